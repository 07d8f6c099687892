"""Renders infra/nats/nats-server.conf: one NATS user per service, each allowed only its subjects.

The table below says, in the bus's own terms (shared/subjects.py), what each service publishes,
which streams it consumes through which durable consumers, which requests it sends or answers.
The JetStream API subjects, acks, inboxes and dead-letter subjects each service needs follow from
that, so the config never drifts from the code by hand: edit the table, then run

    .venv/bin/python -m infra.nats.render_accounts          # rewrite nats-server.conf
    .venv/bin/python -m infra.nats.render_accounts --check  # exit 1 if it is out of date

tests/deploy/test_nats_permissions.py checks the committed file equals the rendered one, and
runs the real services and forbidden publishes against a nats-server started with it.
Passwords are `$NATS_<USER>_PASSWORD` references that nats-server reads from its environment:
a missing one stops the server at start.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from shared import subjects

CONFIG_PATH = Path(__file__).with_name("nats-server.conf")
# The same accounts for each node of the compose profile `cluster` (nats, nats-2, nats-3): the
# node's name and certificate come from its environment (NATS_SERVER_NAME, NATS_TLS_CERT,
# NATS_TLS_KEY), its routes to the others are mutual TLS.
CLUSTER_CONFIG_PATH = Path(__file__).with_name("nats-server-cluster.conf")
CLUSTER_NODES = ("nats", "nats-2", "nats-3")
ROUTE_PORT = 6222
ACCOUNT = "AIRPARADIS"
JS_API = "$JS.API"
INBOX = "_INBOX.>"
# The gateway's reply inboxes (and upstream apps' `reply_to`) live below this prefix.
REPLY_INBOX = f"{subjects.REPLY_PREFIX}.>"


@dataclass(frozen=True)
class Consumes:
    """A subject a service reads from a stream: through a durable consumer shared by its
    replicas, or (durable None) an ephemeral one each process creates for itself."""

    subject: str
    stream: str
    durable: str | None = None


@dataclass(frozen=True)
class ServiceUser:
    """What one NATS user may do, in the bus's terms."""

    name: str
    role: str
    publishes: tuple[str, ...] = ()
    consumes: tuple[Consumes, ...] = ()
    requests: tuple[str, ...] = ()  # core requests it sends (and whose replies it reads)
    answers: tuple[tuple[str, str | None], ...] = ()  # (subject, queue group) it serves
    subscribes: tuple[str, ...] = ()  # plain core subscriptions
    reply_to: bool = False  # publishes to the reply_to subject carried in a tweet
    reads_replies: bool = False  # may read the gateway's reply inboxes
    binds_streams: bool = False  # every platform process checks the streams exist at start
    declares_streams: bool = False  # creates and updates every stream (`airparadis bus init`)
    key_value: tuple[str, ...] = ()  # JetStream KV buckets it reads and writes
    declares_buckets: tuple[str, ...] = ()  # KV buckets it creates and updates (bus init)
    dead_letters: bool = False  # sends what it cannot process to dlq.<subject>
    watches_consumers: bool = False  # reads every durable consumer's state (/readyz)
    purges_ingress: bool = False  # removes processed ingress messages (services/store/ingress.py)

    @property
    def password_env(self) -> str:
        return f"NATS_{self.name.upper()}_PASSWORD"


S = subjects
USERS: tuple[ServiceUser, ...] = (
    ServiceUser(
        "gateway",
        "HTTP gateway: submits tweets and reports, waits for answers, asks infer, sums the "
        "requests its rate limits refused",
        publishes=(S.TWEETS_SUBMITTED, S.FEEDBACK_REPORTED, S.GATEWAY_REFUSED),
        consumes=(Consumes(S.ALERTS_RAISED, S.STREAM_ALERTS),),
        requests=(S.EXPLAIN_REQUESTED, S.INFER_STATUS, S.STORE_QUERY),
        subscribes=(S.PRIVACY_ERASED,),  # drops erased predictions from its memory
        reads_replies=True,
        binds_streams=True,
        watches_consumers=True,
    ),
    ServiceUser(
        "preprocess",
        "worker: tweets.submitted -> tweets.preprocessed",
        publishes=(S.TWEETS_PREPROCESSED,),
        consumes=(Consumes(S.TWEETS_SUBMITTED, S.STREAM_TWEETS, S.DURABLE_PREPROCESS),),
        reply_to=True,  # a tweet that cannot be scored is answered at once, with the reason
        binds_streams=True,
        dead_letters=True,
    ),
    ServiceUser(
        "infer",
        "worker: tweets.preprocessed -> tweets.scored (and tweets.shadow_scored by the "
        "challenger), model swaps, thresholds, explanations",
        publishes=(S.TWEETS_SCORED, S.TWEETS_SHADOW_SCORED),
        consumes=(
            Consumes(S.TWEETS_PREPROCESSED, S.STREAM_TWEETS, S.DURABLE_INFER),
            Consumes(S.TWEETS_PREPROCESSED, S.STREAM_TWEETS, S.DURABLE_SHADOW),
            Consumes(S.MODELS_PROMOTED, S.STREAM_MODELS),
            Consumes(S.MODELS_THRESHOLD, S.STREAM_MODELS),
        ),
        answers=((S.EXPLAIN_REQUESTED, S.INFER_QUEUE), (S.INFER_STATUS, None)),
        reply_to=True,
        binds_streams=True,
        dead_letters=True,
    ),
    ServiceUser(
        "store",
        "worker: scored tweets, reports, alerts, thresholds, drift references and rate-limit "
        "refusals -> ClickHouse",
        consumes=(
            Consumes(S.TWEETS_SCORED, S.STREAM_TWEETS, S.DURABLE_STORE_PREDICTIONS),
            Consumes(S.TWEETS_SHADOW_SCORED, S.STREAM_TWEETS, S.DURABLE_STORE_SHADOW),
            Consumes(S.FEEDBACK_REPORTED, S.STREAM_FEEDBACK, S.DURABLE_STORE_FEEDBACK),
            Consumes(S.ALERTS_RAISED, S.STREAM_ALERTS, S.DURABLE_STORE_ALERTS),
            Consumes(S.MODELS_PROMOTED, S.STREAM_MODELS, S.DURABLE_STORE_REFERENCES),
            Consumes(S.MODELS_THRESHOLD, S.STREAM_MODELS, S.DURABLE_STORE_THRESHOLDS),
            Consumes(S.GATEWAY_REFUSED, S.STREAM_GATEWAY, S.DURABLE_STORE_REFUSALS),
        ),
        publishes=(S.PRIVACY_ERASED,),
        answers=(
            (S.STORE_QUERY, S.STORE_QUEUE),  # reads of the embedded chDB
            (S.STORE_INSERT, S.STORE_QUEUE),  # the api_keys rows `airparadis keys` writes
            (S.STORE_FORGET, S.STORE_QUEUE),  # erasure and access requests
            (S.STORE_EXPORT, S.STORE_QUEUE),
        ),
        binds_streams=True,
        dead_letters=True,
        purges_ingress=True,
    ),
    ServiceUser(
        "alerter",
        "worker: feedback.reported, drift, error-rate and precision checks -> alerts.raised "
        "-> email; models.threshold",
        publishes=(S.ALERTS_RAISED, S.MODELS_THRESHOLD),
        consumes=(
            Consumes(S.FEEDBACK_REPORTED, S.STREAM_FEEDBACK, S.DURABLE_ALERTER),
            Consumes(S.ALERTS_RAISED, S.STREAM_ALERTS, S.DURABLE_MAILER),
        ),
        key_value=(S.KV_ALERTER,),
        requests=(S.STORE_QUERY,),  # the drift and error-rate checks read the store
        binds_streams=True,
        dead_letters=True,
    ),
    ServiceUser(
        "bus",
        "`airparadis bus init` (the bus-init one-shot): creates the streams and the KV bucket "
        "and keeps their limits and replicas in line with the settings (the only user allowed to)",
        declares_streams=True,
        declares_buckets=(S.KV_ALERTER,),
    ),
    ServiceUser(
        "trainer",
        "`airparadis train --promote`, `airparadis models promote` and `airparadis retrain` "
        "(the retrain service): announce promotions; `airparadis data forget / export`: asks "
        "the store",
        publishes=(S.MODELS_PROMOTED,),
        requests=(S.STORE_FORGET, S.STORE_EXPORT),
    ),
    ServiceUser(
        "upstream",
        "apps that publish tweets and reports on the bus and read the scores",
        publishes=(S.TWEETS_SUBMITTED, S.FEEDBACK_REPORTED),
        subscribes=(S.TWEETS_SCORED,),
        reads_replies=True,  # their reply_to must start with _INBOX.airparadis.
    ),
)


@dataclass(frozen=True)
class Permissions:
    publish_allow: tuple[str, ...]
    publish_deny: tuple[str, ...]
    subscribe_allow: tuple[str, ...]
    subscribe_deny: tuple[str, ...]
    allow_responses: bool


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _durables_of(stream: str) -> list[str]:
    return [
        c.durable
        for user in USERS
        for c in user.consumes
        if c.stream == stream and c.durable is not None
    ]


def permissions_of(user: ServiceUser) -> Permissions:
    """The NATS publish/subscribe permissions that let `user` do exactly what the table says."""
    pub: list[str] = [*user.publishes, *user.requests]
    pub_deny: list[str] = []
    sub: list[str] = [INBOX, *user.subscribes]
    sub_deny: list[str] = [] if user.reads_replies else [REPLY_INBOX]
    if user.reply_to:
        pub.append(REPLY_INBOX)
    for subject, queue in user.answers:
        sub.append(f"{subject} {queue}" if queue else subject)
    verbs = ("CREATE", "UPDATE", "INFO") if user.declares_streams else ("INFO",)
    if user.declares_streams or user.binds_streams:
        for stream in subjects.STREAMS:
            pub += [f"{JS_API}.STREAM.{verb}.{stream}" for verb in verbs]
    for bucket in user.declares_buckets:
        pub += [f"{JS_API}.STREAM.{verb}.KV_{bucket}" for verb in ("CREATE", "UPDATE", "INFO")]
    for consumed in user.consumes:
        stream, durable = consumed.stream, consumed.durable
        if durable is None:
            # nats-py creates an ephemeral push consumer without a name, so the server names it;
            # its acks are scoped to the stream, minus the other services' durables.
            pub += [f"{JS_API}.CONSUMER.CREATE.{stream}", f"$JS.ACK.{stream}.*.>"]
            pub_deny += [f"$JS.ACK.{stream}.{other}.>" for other in _durables_of(stream)]
        else:
            pub += [
                f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}",
                f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}.>",
                f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
                f"{JS_API}.CONSUMER.INFO.{stream}.{durable}",
                f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{durable}",
                f"$JS.ACK.{stream}.{durable}.>",
            ]
        if user.dead_letters:
            pub.append(subjects.dead_letter_subject(consumed.subject))
    if user.watches_consumers:
        pub += [
            f"{JS_API}.CONSUMER.INFO.{c.stream}.{c.durable}"
            for other in USERS
            for c in other.consumes
            if c.durable is not None
        ]
    if user.purges_ingress:
        for stream, _, durables in subjects.INGRESS:
            pub.append(f"{JS_API}.STREAM.PURGE.{stream}")
            pub += [f"{JS_API}.CONSUMER.INFO.{stream}.{durable}" for durable in durables]
    for bucket in user.key_value:
        kv_stream = f"KV_{bucket}"
        pub += [
            f"{JS_API}.STREAM.INFO.{kv_stream}",
            f"{JS_API}.STREAM.MSG.GET.{kv_stream}",
            f"{JS_API}.DIRECT.GET.{kv_stream}.>",
            f"$KV.{bucket}.>",
        ]
    return Permissions(
        publish_allow=_unique(pub),
        publish_deny=_unique(pub_deny),
        subscribe_allow=_unique(sub),
        subscribe_deny=_unique(sub_deny),
        # infer and the store answer core requests on the requester's own inbox
        allow_responses=bool(user.answers),
    )


def _quoted(items: tuple[str, ...], indent: str) -> str:
    return "\n".join(f'{indent}"{item}"' for item in items)


def _rule(kind: str, allow: tuple[str, ...], deny: tuple[str, ...], indent: str) -> str:
    inner = indent + "  "
    lines = [f"{indent}{kind}: {{", f"{inner}allow: ["]
    lines += [_quoted(allow, inner + "  "), f"{inner}]"]
    if deny:
        lines += [f"{inner}deny: [", _quoted(deny, inner + "  "), f"{inner}]"]
    lines.append(f"{indent}}}")
    return "\n".join(lines)


def _user_block(user: ServiceUser) -> str:
    perms = permissions_of(user)
    lines = [
        f"      # {user.role}",
        "      {",
        f"        user: {user.name}",
        f"        password: ${user.password_env}",
        "        permissions: {",
        _rule("publish", perms.publish_allow, perms.publish_deny, "          "),
        _rule("subscribe", perms.subscribe_allow, perms.subscribe_deny, "          "),
    ]
    if perms.allow_responses:
        lines.append("          allow_responses: true")
    lines += ["        }", "      }"]
    return "\n".join(lines)


def render(
    *,
    users: tuple[ServiceUser, ...] = USERS,
    store_dir: str | None = "/data",
    port: int = 4222,
    monitor_port: int = 8222,
    server_name: str = "airparadis-nats-1",
    max_file_store: str = "10G",
    sync_interval: str = "$AIRPARADIS_DURABILITY",
    tls_dir: str | None = "/tls/nats",
    routes: tuple[str, ...] | None = None,
    route_listen: str = f"0.0.0.0:{ROUTE_PORT}",
    ca_file: str = "/tls/ca.crt",
) -> str:
    """The nats-server config; the defaults are the compose stack's. store_dir None leaves the
    JetStream folder to the command line (`nats-server --store_dir`, as tests start it);
    tls_dir is where `airparadis tls init` put the server's certificate (None: plain TCP).
    With `routes`, a node of a cluster: its name and certificate from its environment
    (NATS_SERVER_NAME, NATS_TLS_CERT, NATS_TLS_KEY; tls_dir only says TLS is on), routes to
    the other nodes on `route_listen`, both ways checked against `ca_file`."""
    store_line = f'  store_dir: "{store_dir}"\n' if store_dir else ""
    cert, key = (
        ("$NATS_TLS_CERT", "$NATS_TLS_KEY")
        if routes is not None
        else (f'"{tls_dir}/tls.crt"', f'"{tls_dir}/tls.key"')
    )
    tls_block = (
        f"""
# TLS for every client (README, "Security and personal data"): the certificate the `tls`
# one-shot made (airparadis tls init), signed by the stack's own authority, which every
# service trusts through /tls/ca.crt (AIRPARADIS_NATS_TLS_CA). No plain-text client is served.
tls {{
  cert_file: {cert}
  key_file: {key}
  min_version: "1.2"
  timeout: 2
}}
"""
        if tls_dir
        else ""
    )
    if routes is not None:
        server_name = "$NATS_SERVER_NAME"
        route_tls = (
            f"""
  # Mutual TLS between the nodes: each shows its own certificate and accepts only routes
  # whose certificate the stack's authority signed.
  tls {{
    cert_file: {cert}
    key_file: {key}
    ca_file: "{ca_file}"
    verify: true
    timeout: 2
  }}"""
            if tls_dir
            else ""
        )
        route_lines = "\n".join(f'    "{route}"' for route in routes)
        tls_block += f"""
# A node of the JetStream cluster `airparadis` (README, "Scaling out"): streams keep
# AIRPARADIS_STREAM_REPLICAS copies (3), one per node; any one node may be lost.
cluster {{
  name: airparadis
  listen: "{route_listen}"
  # Clients are not told the nodes' internal addresses: they list the nodes themselves
  # (AIRPARADIS_NATS_URL), which an app outside the box could not reach anyway.
  no_advertise: true
  routes: [
{route_lines}
  ]{route_tls}
}}
"""
    user_blocks = "\n".join(_user_block(user) for user in users)
    return f"""\
# GENERATED by infra/nats/render_accounts.py from its table of per-service permissions.
# Do not edit: change the table, then run `python -m infra.nats.render_accounts`.
#
# One user per service in one account, each allowed only its own subjects; no anonymous
# access (no no_auth_user). Passwords come from the server's environment (compose passes
# them from .env); nats-server refuses to start when one is missing.
server_name: {server_name}
port: {port}
# Monitoring (healthz) for the container healthcheck; compose does not publish it.
http_port: {monitor_port}
max_payload: 1MB
{tls_block}
jetstream {{
{store_line}  max_file_store: {max_file_store}
  max_memory_store: 256MB
  # AIRPARADIS_DURABILITY from the environment (compose: `always` unless .env says otherwise):
  # `always` writes every message to disk before acknowledging it (a power cut loses nothing
  # acknowledged); an interval (1s, 2m) is faster and loses up to that much.
  sync_interval: {sync_interval}
}}

accounts {{
  {ACCOUNT} {{
    jetstream: enabled
    users: [
{user_blocks}
    ]
  }}
}}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if nats-server.conf is not up to date"
    )
    args = parser.parse_args(argv)
    outdated = 0
    for path, rendered in rendered_files().items():
        if args.check:
            current = path.read_text(encoding="utf-8") if path.exists() else ""
            if current != rendered:
                print(f"{path} is out of date: run python -m infra.nats.render_accounts")
                outdated += 1
            else:
                print(f"{path} is up to date")
        else:
            path.write_text(rendered, encoding="utf-8")
            print(f"wrote {path}")
    return 1 if outdated else 0


def rendered_files() -> dict[Path, str]:
    """What the committed files must hold: the single server's config and a cluster node's."""
    routes = tuple(f"nats-route://{node}:{ROUTE_PORT}" for node in CLUSTER_NODES)
    return {CONFIG_PATH: render(), CLUSTER_CONFIG_PATH: render(routes=routes)}


if __name__ == "__main__":
    sys.exit(main())
