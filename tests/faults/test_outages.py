"""A dependency of the production stack fails in the middle of a task, and the retry makes it whole.

The production services run for real: S3 (moto's server), PostgreSQL (the feature store), the
MLflow tracking server (PostgreSQL backend, artifacts in S3) and a Slack stand-in. Each is
reached through a :class:`FaultProxy`, which a test switches to ``down``, ``http_5xx``,
``stall`` or ``drop_after`` at a precise request or byte, while a task of the package runs
in-process (no scheduler: the task functions are called as Airflow calls them, and "the retry"
is calling the same function again, as Airflow's next try does).

Each case checks three things (docs/operations.md, "Failure modes"): the failing task raises
(never a silent success, never "no champion"), nothing is half-visible while the dependency is
down (no manifest without data, no partition before its commit, no decision recorded by a gate
that failed, the champion alias never absent), and the retry, once the dependency is back, gives
what an undisturbed run of the same task gives (same bytes, rows, hashes or decision, one model
version per training run, one Slack message per alert). A case that finds the platform wanting
fails with an assertion message naming the function at fault.

The clients' own retries are kept, only shortened (MLflow: 2 retries without backoff; S3: 2
attempts), so an outage outlasts them quickly; what the platform does after them is the subject.
Models are trained with few iterations (a run-time hyperparameter) to keep the file short.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pandas as pd
import psycopg2
import pytest
import requests
from botocore.exceptions import BotoCoreError

from mlops.core import alerts, layout
from mlops.core.config import get_use_case
from mlops.core.lake import Lake, get_lake
from mlops.core.results import FeaturePartition, TrainedModel, TrainingSetManifest
from mlops.core.settings import load_settings
from mlops.data.feature_store import ParquetFeatureStore, PostgresFeatureStore
from mlops.data.features import ENTITY, EVENT_TIME
from mlops.data.ingest import BatchMissing
from mlops.data.tasks import extract_and_archive, materialize_features, validate_batch
from mlops.dev.slack_standin import SlackStandin
from mlops.model import registry
from mlops.model.gate import evaluate_and_promote
from mlops.model.registration import train_and_register
from mlops.model.training_set import prepare_training_set
from tests.e2e.helpers import land
from tests.integration.stack import BUCKET, PG, Stack, _pg_connect
from tests.support.fault_proxy import FaultKind, FaultProxy, HttpRequest

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

ROWS = 400
HISTORY = [dt.date(2026, 9, 1) + dt.timedelta(days=i) for i in range(7)]
FRESH_DAY = HISTORY[-1] + dt.timedelta(days=1)  # archived and validated, never materialized
REFERENCE_CONN = "mlops_feature_store_reference"  # an undisturbed twin of the feature store
# Run-time hyperparameters (the training DAG's ``hyperparameters`` param), small to keep fits short.
FAST = {"max_iter": 40}
WEAK = {"max_iter": 1, "max_leaf_nodes": 2}  # the champion a better model must beat


@dataclass
class Production:
    stack: Stack
    s3: FaultProxy
    mlflow: FaultProxy
    pg: FaultProxy
    slack: FaultProxy
    slack_standin: SlackStandin
    databases: dict[str, str]

    @property
    def proxies(self) -> tuple[FaultProxy, ...]:
        return (self.s3, self.mlflow, self.pg, self.slack)

    # Looking behind the proxies: what the services really hold.
    def _s3(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.stack.s3_endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def lake_keys(self, rel: str, root: str = "lake") -> list[str]:
        prefix = f"{root}/{rel.strip('/')}/"
        return sorted(k[len(prefix) :] for k in self.stack.s3_keys(prefix))

    def lake_bytes(self, rel: str, root: str = "lake") -> bytes:
        return bytes(self._s3().get_object(Bucket=BUCKET, Key=f"{root}/{rel}")["Body"].read())

    def sql(self, database: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
        conn = _pg_connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute(query, args)
                return list(cur.fetchall())
        finally:
            conn.close()


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    """The production services, each behind a fault proxy, and this process's settings pointing at the proxies."""
    import airflow.sdk.io.store

    stack = Stack(home=tmp_path_factory.mktemp("outages"))
    standin = SlackStandin().start()
    proxies: list[FaultProxy] = []
    with pytest.MonkeyPatch.context() as mp:
        try:
            for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
                mp.delenv(key, raising=False)
            dbs = stack.create_databases()
            dbs["reference"] = f"{dbs['features']}_reference"
            conn = _pg_connect()
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{dbs["reference"]}"')
            conn.close()
            stack.databases.append(dbs["reference"])
            stack.start_s3()
            moto_host, moto_port = stack.moto.get_host_and_port()
            s3 = FaultProxy((moto_host, int(moto_port)), http=True, name="s3").start()
            pg = FaultProxy((str(PG["host"]), int(str(PG["port"]))), name="postgres").start()
            slack = FaultProxy(("127.0.0.1", standin.port), http=True, name="slack").start()
            proxies += [s3, pg, slack]
            stack.build_env(dbs, f"{slack.url}{standin.webhook_path}")
            stack.redis_db = 0  # no Celery here: nothing to flush at teardown
            mlflow_port = int(stack.mlflow_url.rsplit(":", 1)[1])
            mlflow = FaultProxy(("127.0.0.1", mlflow_port), http=True, name="mlflow").start()
            proxies.append(mlflow)
            stack.start_mlflow(extra_hosts=(f"127.0.0.1:{mlflow.port}",))

            env = {k: v for k, v in stack.env.items() if k.startswith(("MLOPS_", "MLFLOW_", "AIRFLOW_CONN_"))}
            pg_base = f"postgresql://{PG['user']}@127.0.0.1:{pg.port}"
            # Guards, not behaviour: a lock held by a lost connection fails a statement in 20 s instead of hanging.
            options = "?options=-c%20lock_timeout%3D20000"
            env |= {
                "AIRFLOW_CONN_AWS_LAKE": json.dumps(
                    {
                        "conn_type": "aws",
                        "login": "testing",
                        "password": "testing",
                        "extra": {
                            "endpoint_url": s3.url,
                            "region_name": "us-east-1",
                            "config_kwargs": {"retries": {"max_attempts": 2, "mode": "standard"}},
                        },
                    }
                ),
                "AIRFLOW_CONN_MLOPS_FEATURE_STORE": f"{pg_base}/{dbs['features']}{options}",
                f"AIRFLOW_CONN_{REFERENCE_CONN.upper()}": f"{pg_base}/{dbs['reference']}{options}",
                "MLFLOW_TRACKING_URI": mlflow.url,
                "MLOPS_MLFLOW_UI_URL": mlflow.url,
                "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
                "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
                "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
                "MLOPS_GIT_COMMIT": "fault-tests",
                # MLflow infers a model's pip requirements in a child Python (tens of seconds on a
                # busy machine); cut short, it falls back to its defaults. Nothing here reads them.
                "MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT": "1",
            }
            for key, value in env.items():
                mp.setenv(key, value)
            # Airflow caches one filesystem per connection id: start from none, leave none behind.
            mp.setattr(airflow.sdk.io.store, "_STORE_CACHE", {})
            yield Production(stack, s3, mlflow, pg, slack, standin, dbs)
        finally:
            for proxy in proxies:
                proxy.stop()
            stack.stop()
            standin.stop()


@pytest.fixture(autouse=True)
def _healthy(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts and ends with every dependency up (a failed test leaves no fault behind)."""
    yield
    if "production" in request.fixturenames:
        prod: Production = request.getfixturevalue("production")
        for proxy in prod.proxies:
            proxy.pass_through()


@pytest.fixture(scope="module")
def history(production: Production) -> dict[dt.date, FeaturePartition]:
    """Seven days archived, validated and materialized in the PostgreSQL store; one more archived and validated."""
    uc, lake, settings = get_use_case("churn"), get_lake(), load_settings()
    store = PostgresFeatureStore(settings.feature_store_conn_id)
    partitions = {}
    for day in [*HISTORY, FRESH_DAY]:
        land("churn", day, rows=ROWS)
        extract_and_archive(uc, day, lake, settings.landing_uri)
        validate_batch(uc, day, lake, settings.config_dir)
        if day != FRESH_DAY:
            partitions[day] = materialize_features(uc, day, lake, store)
    return partitions


def reference_lake() -> Lake:
    """A second lake in the same bucket, for the undisturbed run of the same task."""
    return Lake(get_lake().root_uri.rsplit("/", 1)[0] + "/reference")


def on(method: str, *parts: str, header: str | None = None) -> Callable[[HttpRequest], bool]:
    """Match requests by method, by pieces of their target, and optionally by a header's presence."""

    def match(request: HttpRequest) -> bool:
        return (
            request.method == method
            and all(p in request.target for p in parts)
            and (header is None or header in request.headers)
        )

    return match


def after(
    first: Callable[[HttpRequest], bool], then: Callable[[HttpRequest], bool]
) -> Callable[[HttpRequest], bool]:
    """Match the first request accepted by ``then`` once a request accepted by ``first`` went by."""
    armed = threading.Event()

    def match(request: HttpRequest) -> bool:
        if armed.is_set():
            return then(request)
        if first(request):
            armed.set()
        return False

    return match


# ---------------------------------------------------------------------------------------------
# The proxy itself


class _Echo(BaseHTTPRequestHandler):
    """An HTTP service that counts what reaches it, answers 200 with the body it got."""

    seen: list[bytes] = []

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        if self.headers.get("Transfer-Encoding") == "chunked":
            body = b""
            while size := int(self.rfile.readline().strip(), 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append(body)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_fault_proxy_modes() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Echo.seen = []
    try:
        with FaultProxy(("127.0.0.1", server.server_address[1]), http=True, name="echo") as proxy:
            session = requests.Session()  # keeps its connection alive across requests
            assert session.post(proxy.url, data=b"one", timeout=5).content == b"one"
            proxy.http_5xx()
            answer = session.post(proxy.url, data=b"two", timeout=5)
            assert answer.status_code == 503 and answer.reason == "Service Unavailable"
            proxy.http_error(400, b"invalid_payload")
            answer = requests.post(proxy.url, data=b"two", timeout=5)
            assert (answer.status_code, answer.content) == (400, b"invalid_payload")
            proxy.down()
            with pytest.raises(requests.ConnectionError):
                requests.post(proxy.url, data=b"three", timeout=5)
            proxy.stall()
            with pytest.raises(requests.Timeout):
                requests.post(proxy.url, data=b"four", timeout=0.5)
            proxy.pass_through()
            assert session.post(proxy.url, data=iter([b"fi", b"ve"]), timeout=5).content == b"five"  # chunked
            assert _Echo.seen == [b"one", b"five"]  # nothing else reached the service
            # A fault at one request: it reaches the service, its answer is lost, the next passes.
            proxy.fail_request(lambda r: r.target == "/lose", how="lose_response")
            with pytest.raises(requests.ConnectionError):
                requests.post(f"{proxy.url}/lose", data=b"six", timeout=5)
            assert _Echo.seen[-1] == b"six" and [r.target for r in proxy.fired] == ["/lose"]
            assert requests.post(f"{proxy.url}/lose", data=b"seven", timeout=5).content == b"seven"
            # The same, and the service stays down afterwards.
            proxy.fail_request(lambda r: r.target == "/lose", how="lose_response", then="down")
            with pytest.raises(requests.ConnectionError):
                requests.post(f"{proxy.url}/lose", data=b"eight", timeout=5)
            with pytest.raises(requests.ConnectionError):
                requests.post(f"{proxy.url}/lose", data=b"nine", timeout=5)
            assert _Echo.seen[-1] == b"eight" and proxy.mode == "down"
            outcomes = [s.outcome for s in proxy.requests]
            assert outcomes == [
                "forwarded",
                "answered",
                "answered",
                "stalled",
                "forwarded",
                "lost",
                "forwarded",
                "lost",
            ]
    finally:
        server.shutdown()
        server.server_close()

    with FaultProxy((str(PG["host"]), int(str(PG["port"]))), name="postgres") as pg:
        live = psycopg2.connect(host="127.0.0.1", port=pg.port, user=PG["user"], dbname="postgres")
        with live.cursor() as cur:
            cur.execute("SELECT 1")
        pg.drop_existing()  # the live connection is cut, new ones work
        with pytest.raises(psycopg2.OperationalError), live.cursor() as cur:
            cur.execute("SELECT 1")
        conn = psycopg2.connect(host="127.0.0.1", port=pg.port, user=PG["user"], dbname="postgres")
        pg.drop_after(10_000)  # a big statement is cut in the middle
        with pytest.raises(psycopg2.OperationalError), conn.cursor() as cur:
            cur.execute("SELECT length(%s)", ("x" * 100_000,))
        assert pg.cut >= 2
        pg.pass_through()
        conn = psycopg2.connect(host="127.0.0.1", port=pg.port, user=PG["user"], dbname="postgres")
        with conn.cursor() as cur:
            cur.execute("SELECT length(%s)", ("x" * 100_000,))
            assert cur.fetchone() == (100_000,)
        conn.close()


# ---------------------------------------------------------------------------------------------
# 1. S3 down while a batch is archived

ARCHIVE_FAULTS = {
    # the hidden temporary object of the batch itself (its first write)
    "batch upload": lambda day: on("PUT", f"/lake/raw/churn/{day}/.", ".csv.tmp-"),
    # the manifest's temporary object: the batch is in place, the pointer is not
    "manifest upload": lambda day: on("PUT", f"/lake/raw/churn/{day}/._manifest.json.tmp-"),
    # the server-side copy that moves the manifest into place
    "manifest move": lambda day: on(
        "PUT", f"/lake/raw/churn/{day}/_manifest.json", header="x-amz-copy-source"
    ),
}


@pytest.mark.parametrize("point", [pytest.param(p, id=p.replace(" ", "-")) for p in ARCHIVE_FAULTS])
def test_s3_down_while_archiving_a_batch(production: Production, point: str) -> None:
    uc, lake, settings = get_use_case("churn"), get_lake(), load_settings()
    day = dt.date(2026, 10, 1) + dt.timedelta(days=list(ARCHIVE_FAULTS).index(point))
    landed = land("churn", day, rows=ROWS)
    undisturbed = extract_and_archive(uc, day, reference_lake(), settings.landing_uri)

    production.s3.fail_request(ARCHIVE_FAULTS[point](day.isoformat()), how="down")
    with pytest.raises(Exception) as raised:
        extract_and_archive(uc, day, lake, settings.landing_uri)
    assert production.s3.fired, f"the fault at the {point} never happened"
    assert isinstance(raised.value, (OSError, BotoCoreError)), repr(
        raised.value
    )  # "could not connect to <endpoint>"

    # Nothing half-visible: no manifest, so the next task finds no batch (rather than a broken one).
    production.s3.pass_through()
    assert "_manifest.json" not in production.lake_keys(layout.raw_dir("churn", day))
    with pytest.raises(BatchMissing):
        validate_batch(uc, day, lake, settings.config_dir)

    retried = extract_and_archive(uc, day, lake, settings.landing_uri)
    digest = undisturbed["sha256"]
    keys = production.lake_keys(layout.raw_dir("churn", day))
    assert [k for k in keys if not k.startswith(".")] == sorted([f"{digest}.csv", "_manifest.json"]), keys
    # An outage between a temporary object's upload and its move leaves it behind (the cleanup
    # needs S3 too); it is hidden from every reader of the lake, never read as a delivery.
    assert lake.list(layout.raw_dir("churn", day)) == sorted([f"{digest}.csv", "_manifest.json"])
    assert production.lake_bytes(layout.raw_object("churn", day, digest, "csv")) == landed
    stored = json.loads(production.lake_bytes(layout.raw_manifest("churn", day)))
    for manifest in (retried, stored):
        same = {k: v for k, v in manifest.items() if k not in ("received_at", "uri")}
        assert same == {k: v for k, v in undisturbed.items() if k not in ("received_at", "uri")}
    assert stored["superseded"] == []  # the retry is the same delivery, not a re-delivery


# ---------------------------------------------------------------------------------------------
# 2. S3 answering 5xx while a feature partition is written (Parquet store in the S3 lake)

MATERIALIZE_FAULTS = {
    # nothing written yet: the features' file fails on its way in
    "features upload": lambda day: on("PUT", f"/lake/features/churn/{day}/."),
    # the features' file written, the labels' not; nothing committed
    "labels upload": lambda day: on("PUT", f"/lake/labels/churn/{day}/."),
    # both files in place under their hashes, the day's one manifest (its commit) not
    "manifest upload": lambda day: on("PUT", f"/lake/features/churn/_manifests/.{day}.json.tmp-"),
}


@pytest.mark.parametrize("point", [pytest.param(p, id=p.replace(" ", "-")) for p in MATERIALIZE_FAULTS])
def test_s3_5xx_while_materializing_features(production: Production, history: dict, point: str) -> None:
    uc, lake = get_use_case("churn"), get_lake()
    day = HISTORY[list(MATERIALIZE_FAULTS).index(point)]
    store, reference = ParquetFeatureStore(lake), ParquetFeatureStore(reference_lake())
    undisturbed = materialize_features(uc, day, lake, reference)

    production.s3.fail_request(MATERIALIZE_FAULTS[point](day.isoformat()), how="http_5xx")
    with pytest.raises(OSError, match="Service Unavailable"):
        materialize_features(uc, day, lake, store)
    assert production.s3.fired, f"the fault at the {point} never happened"

    # The day is committed by one manifest: before it, readers see none of the day.
    production.s3.pass_through()
    features, labels = store.read_features("churn", day, day), store.read_labels("churn", day, day)
    assert features.empty and labels.empty and day not in store.partitions("churn"), point
    with pytest.raises(FileNotFoundError):
        next(iter(store.iter_features("churn", day, 100)))

    assert materialize_features(uc, day, lake, store) == undisturbed
    committed = store.committed_files("churn", day)
    assert committed == reference.committed_files("churn", day)  # the same files, named by their hashes
    for kind, rel in committed.items():
        assert production.lake_bytes(rel) == production.lake_bytes(rel, root="reference"), kind
        folder = layout.store_day_dir(kind, "churn", day)
        assert lake.list(folder) == reference.lake.list(folder)  # no temporary object in sight
    rel = layout.feature_manifest("churn", day)
    assert production.lake_bytes(rel) == production.lake_bytes(rel, root="reference")
    pd.testing.assert_frame_equal(
        store.read_labels("churn", day, day), reference.read_labels("churn", day, day)
    )


# ---------------------------------------------------------------------------------------------
# 5. PostgreSQL connection lost while the feature store writes a partition


def _rows(store: PostgresFeatureStore, day: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    keys = [EVENT_TIME, ENTITY]
    features = store.read_features("churn", day, day).sort_values(keys).reset_index(drop=True)
    labels = store.read_labels("churn", day, day).sort_values(keys).reset_index(drop=True)
    return features, labels


@pytest.mark.parametrize(
    "existing", [pytest.param(False, id="new-day"), pytest.param(True, id="rewritten-day")]
)
def test_postgres_connection_lost_while_writing_a_partition(
    production: Production, history: dict, existing: bool
) -> None:
    uc, lake, settings = get_use_case("churn"), get_lake(), load_settings()
    day = HISTORY[2] if existing else FRESH_DAY
    store, reference = (
        PostgresFeatureStore(settings.feature_store_conn_id),
        PostgresFeatureStore(REFERENCE_CONN),
    )
    before = _rows(store, day)
    sent = production.pg.bytes_up
    undisturbed = materialize_features(uc, day, lake, reference)
    whole = production.pg.bytes_up - sent  # what one undisturbed write sends to PostgreSQL

    production.pg.drop_after(whole // 2)  # in the middle of the COPY
    cut = production.pg.cut
    with pytest.raises(Exception) as raised:
        materialize_features(uc, day, lake, store)
    assert production.pg.cut > cut, "the connection was never cut"
    assert isinstance(raised.value, psycopg2.Error), repr(raised.value)

    # The transaction died with its connection: the day is exactly as it was, in rows and manifest.
    production.pg.pass_through()
    after_fault = _rows(store, day)
    for got, expected in zip(after_fault, before, strict=True):
        pd.testing.assert_frame_equal(got, expected)
    assert (day in store.partitions("churn")) == existing
    open_tx = production.sql(
        production.databases["features"],
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%%'",
    )
    assert open_tx == [(0,)], "a transaction of the lost connection is still open on the server"

    assert materialize_features(uc, day, lake, store) == undisturbed
    features, labels = _rows(store, day)
    ref_features, ref_labels = _rows(reference, day)
    pd.testing.assert_frame_equal(features, ref_features)
    pd.testing.assert_frame_equal(labels, ref_labels)
    assert len(features) == ROWS and not features.duplicated([ENTITY, EVENT_TIME]).any()
    assert store.partitions("churn")[day] == undisturbed
    if existing:
        pd.testing.assert_frame_equal(features, before[0])


# ---------------------------------------------------------------------------------------------
# 3. MLflow down while a model is trained and registered


@pytest.fixture(scope="module")
def training_set(production: Production, history: dict) -> TrainingSetManifest:
    uc, lake, settings = get_use_case("churn"), get_lake(), load_settings()
    return prepare_training_set(
        uc, HISTORY[-1], lake, PostgresFeatureStore(settings.feature_store_conn_id), "manual__outages"
    )


def _train(manifest: TrainingSetManifest, run_id: str, hyperparameters: dict | None = None) -> TrainedModel:
    return train_and_register(
        get_use_case("churn"),
        manifest,
        get_lake(),
        hyperparameters=hyperparameters or FAST,
        dag_id="churn_training",
        airflow_run_id=run_id,
        reason="fault test",
    )


@pytest.fixture(scope="module")
def undisturbed_model(training_set: TrainingSetManifest) -> TrainedModel:
    """The model an undisturbed training run registers from the shared training set."""
    return _train(training_set, "manual__undisturbed")


def _versions_of(run_id: str) -> list[str]:
    """Every version registered from an MLflow run of this Airflow run (asked of the server directly)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=load_settings().mlflow_tracking_uri)
    uc = get_use_case("churn")
    experiment = client.get_experiment_by_name(uc.experiment_name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.airflow_run_id = '{run_id}'")
    versions = []
    for run in runs:
        versions += [
            str(v.version)
            for v in client.search_model_versions(
                f"name = '{uc.registered_model_name}' and run_id = '{run.info.run_id}'"
            )
        ]
    return sorted(versions, key=int)


REGISTER_FAULTS: dict[str, tuple[FaultKind, Callable[[HttpRequest], bool]]] = {
    # the registration itself never reaches the server
    "registration refused": ("down", on("POST", "/api/2.0/mlflow/model-versions/create")),
    # the server registers the version, its answer is lost, MLflow is back at once
    "registration answer lost": ("lose_response", on("POST", "/api/2.0/mlflow/model-versions/create")),
}


@pytest.mark.parametrize("point", [pytest.param(p, id=p.replace(" ", "-")) for p in REGISTER_FAULTS])
def test_mlflow_down_while_training_and_registering(
    production: Production, training_set: TrainingSetManifest, undisturbed_model: TrainedModel, point: str
) -> None:
    from mlflow.exceptions import MlflowException

    run_id = f"manual__register_{point.replace(' ', '_')}"
    how, match = REGISTER_FAULTS[point]
    production.mlflow.fail_request(match, how=how)
    try:
        trained: TrainedModel | None = _train(training_set, run_id)
    except MlflowException as exc:  # the try failed (MLflow unreachable): Airflow retries it
        assert "failed" in str(exc), exc
        trained = None
    assert production.mlflow.fired, f"the fault at the {point} never happened"
    production.mlflow.pass_through()
    registered = _versions_of(run_id)
    assert len(registered) <= 1, (
        f"{point}: one try of train_and_register registered {len(registered)} versions {registered} for one "
        "training run. MLflow's client retried POST model-versions/create after the server had registered the "
        "version (its answer was lost); train_and_register registers through log_model(registered_model_name=...), "
        "which is not idempotent, so the client's own retry creates a duplicate version."
    )
    if trained is None:
        trained = _train(training_set, run_id)  # the retry
    registered = _versions_of(run_id)
    assert registered == [trained["version"]], f"{point}: versions of the run after the retry: {registered}"
    assert trained["metrics"] == undisturbed_model["metrics"]
    client = registry.configure_mlflow()
    tags = client.get_model_version(get_use_case("churn").registered_model_name, trained["version"]).tags
    assert tags["airflow_run_id"] == run_id and tags["training_set_hash"] == training_set["training_set_hash"]
    assert registry.load_model(get_use_case("churn").registered_model_name, trained["version"]) is not None


# ---------------------------------------------------------------------------------------------
# 4. MLflow down or answering 5xx while the gate looks up, loads or moves the champion


@dataclass
class Gate:
    weak: TrainedModel
    challenger: TrainedModel
    manifest: TrainingSetManifest
    undisturbed: dict[str, Any]


def _set_champion(version: str) -> None:
    client = registry.configure_mlflow()
    name = get_use_case("churn").registered_model_name
    client.set_registered_model_alias(name, registry.CHAMPION, version)
    for alias in (registry.PREVIOUS, registry.CHALLENGER):
        holder = registry.alias_version(client, name, alias)
        if holder is not None:
            client.delete_registered_model_alias(name, alias)


def _champion() -> str | None:
    found = registry.alias_version(
        registry.configure_mlflow(), get_use_case("churn").registered_model_name, registry.CHAMPION
    )
    return None if found is None else str(found.version)


def _gate(gate: Gate, run_id: str) -> dict[str, Any]:
    return dict(
        evaluate_and_promote(
            get_use_case("churn"),
            gate.challenger,
            gate.manifest,
            get_lake(),
            mode="auto",
            dag_id="churn_training",
            airflow_run_id=run_id,
        )
    )


def _decisions(run_id: str) -> list[dict[str, Any]]:
    return [dict(h) for h in registry.promotion_history(get_lake(), "churn") if h["airflow_run_id"] == run_id]


DECISION = (
    "version",
    "champion_before",
    "outcome",
    "promoted",
    "reason",
    "challenger_metrics",
    "comparison",
    "aliases_after",
)


@pytest.fixture(scope="module")
def gate(production: Production, training_set: TrainingSetManifest, undisturbed_model: TrainedModel) -> Gate:
    """A weak champion (set by hand, as an operator does), a better challenger, and the undisturbed decision."""
    weak = _train(training_set, "manual__gate_weak", WEAK)
    _set_champion(weak["version"])
    g = Gate(weak, undisturbed_model, training_set, {})
    g.undisturbed = _gate(g, "manual__gate_undisturbed")
    assert g.undisturbed["outcome"] == "promoted", (
        f"the scenario needs a promotion: {g.undisturbed['reason']}"
    )
    return g


GATE_FAULTS: dict[str, tuple[FaultKind, Callable[[Gate], Callable[[HttpRequest], bool]]]] = {
    "champion lookup answers 5xx": (
        "http_5xx",
        lambda gate: on("GET", "/api/2.0/mlflow/registered-models/alias", "alias=champion"),
    ),
    "down while the champion is downloaded": (
        "down",
        lambda gate: after(
            on("GET", "/api/2.0/mlflow/model-versions/get-download-uri", f"version={gate.weak['version']}"),
            on("GET", "/api/2.0/mlflow-artifacts/", "/model.skops"),
        ),
    ),
    "down after the champion alias moved": (
        "down",
        lambda gate: after(
            on("POST", "/api/2.0/mlflow/registered-models/alias"),
            on("POST", "/api/2.0/mlflow/model-versions/set-tag"),
        ),
    ),
}


@pytest.mark.parametrize("point", [pytest.param(p, id=p.replace(" ", "-")) for p in GATE_FAULTS])
def test_mlflow_failing_while_the_gate_judges_the_champion(
    production: Production, gate: Gate, point: str
) -> None:
    from mlflow.exceptions import MlflowException

    run_id = f"manual__gate_{point.replace(' ', '_')}"
    _set_champion(gate.weak["version"])
    how, match = GATE_FAULTS[point]
    production.mlflow.fail_request(match(gate), how=how)
    with pytest.raises(MlflowException) as raised:
        _gate(gate, run_id)
    assert production.mlflow.fired, f"the fault ({point}) never happened"
    assert "first model" not in str(raised.value)

    production.mlflow.pass_through()
    champion = _champion()
    assert champion is not None, "the champion alias is absent after the fault"
    if point == "down after the champion alias moved":
        assert champion == gate.challenger["version"]
    else:
        assert champion == gate.weak["version"], "production changed although the gate failed"
    assert _decisions(run_id) == [], "a decision was recorded by a gate that failed"

    retried = _gate(gate, run_id)
    assert "first model" not in retried["reason"], (
        f"the retry judged the challenger as the first model: {retried['reason']}"
    )
    assert {k: retried.get(k) for k in DECISION} == {k: gate.undisturbed.get(k) for k in DECISION}, (
        f"{point}: the retried decision differs from the undisturbed one"
    )
    assert _champion() == gate.challenger["version"]
    assert [d["outcome"] for d in _decisions(run_id)] == ["promoted"]


# ---------------------------------------------------------------------------------------------
# 6. Slack failing while alerts are delivered

SLACK_FAULTS: dict[str, tuple[str, Callable[[FaultProxy], None]]] = {
    "5xx": ("webhook", lambda proxy: proxy.http_5xx()),
    "timeout": ("webhook", lambda proxy: proxy.stall()),
    "invalid-payload": ("webhook", lambda proxy: proxy.http_error(400, b"invalid_payload")),
    "down": ("webhook", lambda proxy: proxy.down()),
    # Slack took the message; its answer never came back, and Slack is unreachable afterwards
    "answer-lost-webhook": (
        "webhook",
        lambda proxy: proxy.fail_request(on("POST", "/services/"), how="lose_response", then="down"),
    ),
    "answer-lost-web-api": (
        "web-api",
        lambda proxy: proxy.fail_request(
            on("POST", "/api/chat.postMessage"), how="lose_response", then="down"
        ),
    ),
}


def _posted_once(via: str, posted: int, why: str) -> None:
    """Exactly one post through the Web API, which can be asked what the channel holds.

    An incoming webhook cannot be asked whether it took a message whose answer was lost, so there
    the platform posts again: at least once, never lost (docs/operations.md, "Failure modes").
    """
    if via == "webhook":
        assert 1 <= posted <= 2, f"Slack posted the alert {posted} times"
    else:
        assert posted == 1, f"Slack posted the alert {posted} times: {why}"


@pytest.mark.parametrize("fault", list(SLACK_FAULTS))
def test_slack_failing_while_alerts_are_delivered(production: Production, fault: str) -> None:
    lake = get_lake()
    via, make_fault = SLACK_FAULTS[fault]
    target = None  # the configured incoming webhook (MLOPS_SLACK_WEBHOOK_URL)
    if via == "web-api":
        target = alerts.SlackTarget(
            token=production.slack_standin.token, channel="#mlops", base_url=f"{production.slack.url}/api/"
        )
    scope = layout.failure_scope(f"churn_outage_{fault.replace('-', '_')}")
    alert = alerts.failure_alert(
        dag_id="churn_data",
        run_id=f"manual__{fault}",
        task_id="extract_batch",
        error=f"{fault} test",
        log_url=None,
    )
    assert alerts.enqueue(lake, scope, alert)
    production.slack_standin.clear()

    make_fault(production.slack)
    started = time.monotonic()
    first = alerts.deliver_pending(lake, scope, target)
    took = time.monotonic() - started
    assert first["delivered"] == [] and first["pending"] == [alert["id"]], first
    assert lake.exists(layout.alert_record(scope, "outbox", alert["id"])), "the alert left the outbox"
    assert not lake.exists(layout.alert_record(scope, "sent", alert["id"]))
    record = lake.read_json(layout.alert_record(scope, "outbox", alert["id"]))
    assert record["attempts"] == 1 and record["last_error"], record
    assert took < 60, f"one delivery run took {took:.0f}s"

    production.slack.pass_through()
    second = alerts.deliver_pending(lake, scope, target)
    assert second["delivered"] == [alert["id"]] and second["pending"] == [], second
    third = alerts.deliver_pending(lake, scope, target)
    assert third["delivered"] == [] and third["pending"] == []
    assert not lake.exists(layout.alert_record(scope, "outbox", alert["id"]))
    assert lake.exists(layout.alert_record(scope, "sent", alert["id"]))
    posted = [m for m in production.slack_standin.messages if m.text == alert["text"]]
    if fault.startswith("answer-lost"):
        why = "the next run posted it again without finding it in the channel (deliver_pending / already_posted)"
        _posted_once(via, len(posted), why)
    else:
        assert len(posted) == 1, f"Slack posted the alert {len(posted)} times"


@pytest.mark.parametrize("via", ["webhook", "web-api"])
def test_slack_answer_lost_and_slack_back_at_once(production: Production, via: str) -> None:
    """Slack took the message, its answer was lost, the next request goes through."""
    lake = get_lake()
    target = None
    if via == "web-api":
        target = alerts.SlackTarget(
            token=production.slack_standin.token, channel="#mlops", base_url=f"{production.slack.url}/api/"
        )
    scope = layout.failure_scope(f"churn_outage_blip_{via.replace('-', '_')}")
    alert = alerts.failure_alert(
        dag_id="churn_data", run_id=f"manual__blip_{via}", task_id="extract_batch", error="blip", log_url=None
    )
    assert alerts.enqueue(lake, scope, alert)
    production.slack_standin.clear()

    path = "/services/" if via == "webhook" else "/api/chat.postMessage"
    production.slack.fail_request(on("POST", path), how="lose_response", then="pass")
    delivery = alerts.deliver_pending(lake, scope, target)
    assert production.slack.fired, "the answer was never lost"
    assert delivery["delivered"] == [alert["id"]], delivery
    posted = [m for m in production.slack_standin.messages if m.text == alert["text"]]
    why = (
        "twice in one delivery: the ConnectionErrorRetryHandler of post_to_slack (alerts._retry_handlers) "
        "re-sends a POST whose request had already reached Slack (a connection reset while reading the answer), "
        "without looking in the channel first"
    )
    _posted_once(via, len(posted), why)
