// The API key of this tab, for the pages of a gateway that requires keys (AIRPARADIS_AUTH=on).
// Asked once in a small form, checked against /v1/whoami, kept in sessionStorage (this tab only:
// gone when the tab closes, never written to disk by a shared computer's browser profile, never
// in a URL) and sent as `Authorization: Bearer <key>` with each API call.
// The page's own script calls apiKey.start(onReady) and apiKey.headers(); on a 401 it calls
// apiKey.ask(reason).
"use strict";

const apiKey = (() => {
  const STORAGE = "airparadis.api-key";
  const $ = (id) => document.getElementById(id);
  let onReady = () => {};

  const stored = () => sessionStorage.getItem(STORAGE) || "";

  function headers(extra = {}) {
    const key = stored();
    return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
  }

  function ask(reason) {
    $("key-card").hidden = false;
    $("key-status").hidden = true;
    $("key-error").textContent = reason || "";
    $("key-error").hidden = !reason;
    $("api-key").focus();
  }

  function signedIn(identity) {
    $("key-card").hidden = true;
    $("key-error").hidden = true;
    if (identity.key) {
      $("key-name").textContent = identity.key.name;
      $("key-status").hidden = false;
    }
  }

  // Which key this tab holds, if the gateway wants one: ready, or the form asks for a key.
  async function check() {
    let response;
    try {
      response = await fetch("/v1/whoami", { headers: headers() });
    } catch (err) {
      onReady(); // the page's own calls will say the service cannot be reached
      return;
    }
    const body = await response.json().catch(() => ({}));
    if (response.ok) {
      signedIn(body);
      onReady();
    } else if (response.status === 401) {
      const had = stored();
      sessionStorage.removeItem(STORAGE);
      ask(had ? "This key was refused: it is unknown or was revoked." : "");
    } else {
      onReady();
    }
  }

  function start(ready) {
    onReady = ready || onReady;
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("api-key").value.trim();
      if (!key) { ask("Paste the API key first."); return; }
      sessionStorage.setItem(STORAGE, key);
      $("api-key").value = "";
      check();
    });
    $("key-forget").addEventListener("click", () => {
      sessionStorage.removeItem(STORAGE);
      ask("");
    });
    check();
  }

  return { start, headers, ask };
})();
