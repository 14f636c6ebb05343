"""Every default, limit and backoff schedule of grctl, each with its unit and why it has its value.

The one place to look for "what is the default for X": the SDK, the engine, grctld's configuration
(its model, its JSON Schema's ``default``s and ``grctl.yaml.example``) and the command line's help read
their values from here or are checked against it (``tests/unit/test_settings.py``). Durations are in
seconds unless the name ends in ``_MS``. Imports nothing of grctl, so every layer may use it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Backoff:
    """A retry schedule: the pause grows from ``initial`` seconds by ``factor`` up to ``cap`` seconds,
    spread by ``jitter`` (a fraction of the pause) so processes retrying after one outage do not come
    back in lock step."""

    initial: float = 0.1
    factor: float = 2.0
    cap: float = 5.0
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.initial * self.factor ** max(attempt - 1, 0), self.cap)
        if self.jitter:
            base *= 1 + random.uniform(-self.jitter, self.jitter)
        return max(0.0, base)


def heartbeat_for(ack_wait: float) -> float:
    """Seconds between in-progress acks of a held message: three per ack wait, so one lost heartbeat
    never lets the server redeliver work still in progress."""
    return max(ack_wait / 3, 0.05)


# --- NATS connection ---------------------------------------------------------------------------------
NATS_PORT: Final = 4225  # port; the public grctl server's: our nodes and clients meet there by default
NATS_SERVERS: Final = (f"nats://localhost:{NATS_PORT}",)  # URLs; where a process looks with no setting
CONNECT_TIMEOUT: Final = 5.0  # s; one connection attempt, long enough for a TLS handshake over a WAN
RECONNECT_WAIT: Final = 1.0  # s; pause between reconnection attempts, as nats-py's own default
MAX_RECONNECT_ATTEMPTS: Final = -1  # count; -1 never gives up: a server restart must not end a process
EMBEDDED_NATS_HOST: Final = "127.0.0.1"  # address; grctld's own nats-server serves this host only

# --- Event loop --------------------------------------------------------------------------------------
# The engine's and grctld's processes: uvloop where installed ("auto"), measured 15-25 % less CPU per
# step than asyncio's own loop; GRCTL_EVENT_LOOP overrides it (eventloop.py).
EVENT_LOOP: Final = "auto"  # choice; auto (uvloop where installed), uvloop or asyncio
# Python 3.11 can drop a cancellation that lands with a reply (lifecycle.cancel); a stop pays the
# repeat only when the first cancellation was lost.
CANCEL_AGAIN_AFTER: Final = 0.1  # s; a cancellation not taken within this is sent again

# --- Retry schedules shared by the transport ---------------------------------------------------------
# Transport trouble (a reconnecting connection, a JetStream API not answering yet). The cap is short
# because what ends such trouble (a reconnection, an elected leader) is not seen otherwise: the time
# from its end to the next attempt adds to the pause at every hop of a run.
TRANSPORT_BACKOFF: Final = Backoff(initial=0.1, factor=2.0, cap=1.0)  # s; see above
FETCH_BACKOFF: Final = Backoff(initial=0.1, factor=2.0, cap=0.5)  # s; a consumer whose leader is elected
READ_BACKOFF: Final = Backoff(initial=0.05, factor=2.0, cap=0.5)  # s; an election ends in about 2 s
READ_TIMEOUT: Final = 2.0  # s; one direct get; waiting long on a dead server only stalls the caller
READ_BUDGET: Final = 10.0  # s; how long a read rides out transport trouble before its caller sees it
READ_PAGE: Final = 512  # messages; asked for per batched direct get
JS_API_TIMEOUT: Final = 5.0  # s; one JetStream API or direct request: a server that can answers in ms
PULL_SLOTS: Final = 64  # messages; handled at once by a pull loop that shares no capacity
PULL_BATCH: Final = 64  # messages; asked for per fetch by a pull loop that names no batch
PULL_FETCH_TIMEOUT: Final = 1.0  # s; one fetch of a pull loop that names no timeout
PULL_HANDLER_ERROR_DELAY: Final = 1.0  # s; pause after a handler raised, so a bad message cannot spin
PULL_REBIND_AFTER_FAILURES: Final = 20  # count; fetch failures of unknown cause before re-binding

# --- Engine API (client side) ------------------------------------------------------------------------
API_TIMEOUT: Final = 5.0  # s; one request; a busy engine answers 5030 long before this
API_BUDGET: Final = 60.0  # s; how long a command is retried while no engine answers or it is busy
API_MAX_OUTSTANDING: Final = 256  # requests; per connection waiting for the engine; the rest queue
API_BACKOFF: Final = Backoff(initial=0.1, factor=2.0, cap=3.0)  # s; a restarting or busy engine
REGISTRATION_WAIT: Final = 5.0  # s; a start on a new worker's connection waits for its registration
OUTCOME_INACTIVE_THRESHOLD: Final = 5.0  # s; the fallback outcome consumer is removed after this idle
OUTCOME_RECHECK_ATTEMPTS: Final = 60  # count; reads of a run's last event after a reconnection
FOLLOW_INACTIVE_THRESHOLD: Final = 10.0  # s; a history follower's consumer outlives a short outage
LIST_LIMIT: Final = 100  # runs; a run.list that names no limit: a screenful, newest first
MAX_LIST: Final = 1000  # runs; in one run.list reply, far below the server's max_payload

# --- Names and the stream ----------------------------------------------------------------------------
# A subject holds up to three names plus fixed parts, and the server closes any connection that sends
# a protocol line longer than 4096 bytes: 255 keeps every subject well inside that.
MAX_NAME_BYTES: Final = 255  # bytes; a name (workflow id, type, run id, event name, store key...)
# Dotted ids are often made of a name and a prefix or two ("start.{run id}", "next.{directive id}").
MAX_ID_BYTES: Final = 2 * MAX_NAME_BYTES  # bytes; an id that may hold dots
REPLICAS: Final = 1  # copies; of every stream message: a single node has one server (a cluster sets 3)
MAX_REPLICAS: Final = 5  # copies; JetStream's own limit
DUPLICATE_WINDOW: Final = 120.0  # s; JetStream's default, kept
# A directive redelivered after its commit (the engine died before acking) returns after the directive
# consumer's ack wait, and a commit may be retried for a while: its id must still be recognised then.
MIN_DUPLICATE_WINDOW: Final = 30.0  # s; a wide margin over both
RETENTION: Final = 7 * 86400.0  # s; a finished run's records are kept a week (0: for ever)

# --- Engine ------------------------------------------------------------------------------------------
ENGINE_STEP_TIMEOUT: Final = 300.0  # s; a step whose directive asks for none (the SDK always asks)
ENGINE_WAIT_TIMEOUT: Final = 3600.0  # s; a wait for an event whose directive asks for none
RECOVERY_GRACE: Final = 15.0  # s; extra time for a step whose deadline passed while no engine watched
ENGINE_ACK_WAIT: Final = 5.0  # s; a directive held by a dead engine comes back after this long
ENGINE_FETCH_TIMEOUT: Final = 0.25  # s; idle polling period; also how long stop() waits for a fetch
ENGINE_MAX_ACK_PENDING: Final = 10000  # messages; held unacked per engine consumer, far above its slots
ENGINE_STOP_TIMEOUT: Final = 30.0  # s; a stopping engine finishes the directives in hand within this
ENGINE_STOP_TIMEOUT_LOST: Final = 5.0  # s; the same with its connection gone: nothing more can commit
COMPONENT_STOP_TIMEOUT: Final = 10.0  # s; the API, the group committer: work in hand finishes within this
STORAGE_FULL_HOLD: Final = 5.0  # s; without a refused write (and one accepted) before storage is free
COMMIT_TIMEOUT: Final = 10.0  # s; one atomic batch: large batches on a busy cluster take seconds
WORKER_CMD_TIMEOUT: Final = 5.0  # s; telling a worker to stop a step; a lost one is retried
ENGINE_SLOTS: Final = 512  # directives; worked on at once by one engine
DIRECTIVE_ATTEMPTS: Final = 50  # count; in-place retries of a directive; then NAK, JetStream redelivers
DIRECTIVE_BACKOFF: Final = Backoff(initial=0.05, factor=2.0, cap=1.0)  # s; a directive retried in place
MAX_RECORDS: Final = 999  # messages; of one transition: a server batch holds 1000, one is kept spare
MAX_BATCH_MSGS: Final = 500  # messages; per group commit (the server allows 1000)
MAX_CONCURRENT_BATCHES: Final = 16  # batches; open at once (the server allows 50 per stream)
MAX_BAD_INBOX_SKIPS: Final = 100  # messages; undecodable inbox entries skipped before giving up
MAX_CONCURRENT_REQUESTS: Final = 256  # requests; API requests worked on at once
MAX_QUEUED_REQUESTS: Final = 4096  # requests; waiting for a slot; beyond, "busy" at once
REQUEST_QUEUE_WAIT: Final = 2.0  # s; a request that gets no slot this soon is answered "busy"
START_ATTEMPTS: Final = 5  # count; compare-and-swap attempts of one run.start
API_SETTLE: Final = 0.05  # s; after subscribing the API, so early requests do not meet 'no responders'
REGISTRY_CACHE: Final = 2.0  # s; how long a registered workflow type is trusted without a read
TIMER_DELIVERIES: Final = 50  # count; about five minutes of retries with TIMER_BACKOFF
TIMER_BACKOFF: Final = Backoff(initial=0.1, factor=2.0, cap=8.0)  # s; a fired timer that failed
BG_DELIVERIES: Final = 60  # count; of one background task before it is given up
BG_BACKOFF: Final = Backoff(initial=0.2, factor=2.0, cap=10.0)  # s; a background task that failed
ENGINE_STARTUP_BUDGET: Final = 120.0  # s; a start waits this long for JetStream to answer
ENGINE_STARTUP_BACKOFF: Final = Backoff(initial=0.2, factor=2.0, cap=2.0)  # s; JetStream not ready yet
SWEEP_INTERVAL: Final = 10.0  # s; how often what the consumers acknowledged is purged
RUN_INDEX_LOAD_WAIT: Final = 30.0  # s; a list request waits this long for the index's first load
RUN_INDEX_MAX_RUNS: Final = 100_000  # runs; held; beyond, the oldest finished ones are forgotten
RUN_INDEX_POLL: Final = 1.0  # s; how often the index reads new run infos
RUN_INDEX_BATCH: Final = 4096  # run infos; read per request while catching up
STEPDOWN_TIMEOUT: Final = 2.0  # s; a consumer leader's step-down request
PLACEMENT_CHECK_INTERVAL: Final = 5.0  # s; how soon a consumer is moved to the stream leader
RETRY_ATTEMPTS: Final = 5  # count; compare-and-swap attempts of one run.retry (the pointer kept moving)
CATALOG_NAMED_RUNS: Final = 5  # runs; named per handler a catalog check finds dropped
CATALOG_READS_AT_ONCE: Final = 64  # requests; run-state reads in flight at once in a catalog check

# --- Schedules and delayed starts (docs/operations.md#schedules) -------------------------------------
SCHEDULE_CATCHUP_WINDOW: Final = 60.0  # s; a tick found due later than this is counted missed, not run
SCHEDULE_TIMEZONE: Final = "UTC"  # zone; cron fields are read in it when a schedule names none
SCHEDULE_MIN_EVERY: Final = 1.0  # s; the finest interval (a tick's workflow id has whole seconds)
SCHEDULE_BUFFER_POLL: Final = 1.0  # s; between looks at whether a buffered tick's predecessor ended
SCHEDULE_MAX_CATCHUP_TICKS: Final = 1000  # count; of ticks looked at in one catch-up (the latest kept)
SCHEDULE_MAX_BACKFILL: Final = 1000  # count; of ticks one backfill may start
SCHEDULE_UPDATE_ATTEMPTS: Final = 20  # count; compare-and-swap rounds of a schedule state
SCHEDULE_BACKOFF: Final = Backoff(initial=0.5, factor=2.0, cap=15.0)  # s; a tick that could not fire
SCHEDULE_LATE_AFTER: Final = 1.0  # s; a tick fired later than this counts in the late metric
SCHEDULE_DECLARE_BUDGET: Final = 30.0  # s; grctld's declaration waits this long for an engine, then pauses
SCHEDULE_FIRES_SHOWN: Final = 3  # count; of next fire times --print-config shows per schedule

# --- Worker (SDK) ------------------------------------------------------------------------------------
STEP_TIMEOUT: Final = 10.0  # s; a step handler's timeout when its decorator names none (public SDK's)
MAX_CONCURRENT_STEPS: Final = 16  # steps; one process runs at once (also grctld's worker default)
SHUTDOWN_TIMEOUT: Final = 30.0  # s; a stopping worker finishes its in-flight steps within this
CANCEL_GRACE: Final = 5.0  # s; steps cancelled at shutdown get this long to report
# How long one fetch waits for steps bounds how long stop() waits for the fetch in flight (whose steps
# it must hand back), how soon a fetch reaches a consumer's new leader after an election, and each
# type's turn when step slots are fewer than types; an idle type costs two pull requests a second.
WORKER_FETCH_TIMEOUT: Final = 0.5  # s; see above
WORKER_FETCH_BATCH: Final = 32  # messages; asked for in one fetch, at most the free step slots
WORKER_MAX_ACK_PENDING: Final = 1000  # messages; tasks held unacked per type (at least the step slots)
WORKER_READY_WAIT: Final = 5.0  # s; Worker.wait_until_ready() when the caller names no timeout
WORKER_EXIT_WAIT: Final = 5.0  # s; grctld's worker process waits this long for its runner after a stop
WORKER_ACK_WAIT: Final = 5.0  # s; a task held by a dead worker comes back after this long
PUBLISH_TIMEOUT: Final = 5.0  # s; one publish of a result or directive
PUBLISH_BUDGET: Final = 30.0  # s; how long a write is retried when the caller does not say
MIN_IO_BUDGET: Final = 10.0  # s; even a step past its deadline tries this long before giving up
DISPATCH_RETRY_DELAY: Final = 1.0  # s; a task this worker cannot take is offered again after this
HISTORY_READ_BUDGET: Final = 10.0  # s; reading a run's history before replaying a step
REGISTER_ATTEMPTS: Final = 5  # count; a worker's registration, while no engine answers
REGISTER_BACKOFF: Final = 0.5  # s; pause between registration attempts
REGISTER_TIMEOUT: Final = 5.0  # s; one registration request
TASK_RETRY_INITIAL_MS: Final = 100  # ms; a task's first retry when its policy names none
TASK_RETRY_MULTIPLIER: Final = 2.0  # factor; growth of a task's retry pause
TASK_RETRY_MAX_MS: Final = 5000  # ms; the longest pause between a task's retries
# A task the worker's code cannot run is handed back after 0.25 s, doubling up to 30 s: while old and
# new code share a type, a task that keeps reaching the wrong one comes back quickly the first few
# times (seven misses in a row cost 32 s, not 91 s from 1 s); a fix-forward deploy is picked up within
# half a minute, and a stuck run costs a delivery or two a minute.
HOLD_BACKOFF: Final = Backoff(initial=0.25, factor=2.0, cap=30.0)  # s; see above
HELD_RUNS_REMEMBERED: Final = 10_000  # runs; whose hold a worker process logged (oldest forgotten first)

# --- grctld ------------------------------------------------------------------------------------------
WORKER_PROCESSES: Final = 1  # processes; per generation on one host
READY_TIMEOUT: Final = 60.0  # s; a new generation connects, registers and consumes within this
KILL_MARGIN: Final = 5.0  # s; granted beyond shutdown_timeout before SIGKILL
RESTART_BACKOFF: Final = Backoff(initial=0.5, factor=2.0, cap=30.0, jitter=0.0)  # s; a crashed child
STABLE_AFTER: Final = 30.0  # s; a process up this long resets its restart backoff
CONFIG_POLL_INTERVAL: Final = 2.0  # s; content check of the configuration under the file watch
WATCH_DEBOUNCE_MS: Final = 200  # ms; file changes closer than this are one change
WATCH_STEP_MS: Final = 50  # ms; how often the watcher looks for the end of a burst of changes
WATCH_TICK_MS: Final = 1000  # ms; how often the watch loop yields when nothing happens (stop checks)
WATCH_MAX_LINKS: Final = 40  # count; symlinks followed to find what the configuration file is, as the kernel
STOP_SLACK: Final = 5.0  # s; grctld's own work while stopping, in the stop budget it tells systemd
NATS_SERVER_START_TIMEOUT: Final = 10.0  # s; a nats-server child listens within this, or is stopped
NATS_SERVER_STOP_TIMEOUT: Final = 10.0  # s; a stopping nats-server child flushes within this, then SIGKILL
CATALOG_CHECK_BUDGET: Final = 20.0  # s; a reload asks the engine which handlers live runs need
CATALOG_CHECK_FIRST_START: Final = 3.0  # s; the same at the first start, where it can only warn
CATALOG_CHECK_CONNECT: Final = 2.0  # s; --check-config's one attempt to reach NATS (it must not hang)

CHECK_CONNECTION_WITHIN: Final = 15.0  # s; --check-connection gives up; nats-py retries a bad TLS for ever

# --- Metrics -----------------------------------------------------------------------------------------
# Histogram buckets. Steps take from milliseconds (a decision) to minutes (a step that calls slow
# services); commits and API requests a few milliseconds normally, seconds under overload or a leader
# change; a group commit holds one transition to hundreds.
STEP_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)  # s; see above
LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)  # s; see above  # noqa: E501
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 500, 1000)  # count; transitions per commit

# --- HTTP listener (/metrics, /healthz, /readyz, the engine's console) -------------------------------
HTTP_MAX_HEADER_BYTES: Final = 16384  # bytes; a larger request header field is refused
HTTP_SHUTDOWN_TIMEOUT: Final = 2.0  # s; open requests (a live history) get this long when it stops

# --- Command line ------------------------------------------------------------------------------------
# One connection attempt, then two more half a second apart: an unreachable server is reported after
# about a second, and a long ``history --follow`` survives a short outage.
CLI_CONNECT_TIMEOUT: Final = 2.0  # s; see above
CLI_RECONNECT_ATTEMPTS: Final = 2  # count; see above
CLI_RECONNECT_WAIT: Final = 0.5  # s; see above
CLI_RETRY_FOR: Final = 3.0  # s; a command is retried this long while no engine answers or it is busy

# --- Cluster operations (grctl cluster) --------------------------------------------------------------
CLUSTER_GATHER: Final = 1.0  # s; answers from every NATS server to one broadcast request are collected
PEER_REMOVE_TIMEOUT: Final = 120.0  # s; waiting for a JetStream meta leader (an election after its death)
PEER_REMOVE_POLL: Final = 1.0  # s; between looks for a meta leader
REPLICA_STATUS_POLL: Final = 2.0  # s; between looks at the replicas (cluster status --wait)

# --- Web console (the engine's listener, at /) -------------------------------------------------------
CONSOLE_PAGE_SIZE: Final = 50  # runs; one page of the Runs page
CONSOLE_BULK_MAX: Final = 1000  # runs; one bulk action acts on the newest this many; the rest need another
CONSOLE_BULK_PARALLEL: Final = 16  # requests; to the engine in flight at once during a bulk action
CONSOLE_RATE_SAMPLE: Final = 10.0  # s; how often the Workers page's rates read the engine's counters
CONSOLE_RATE_WINDOW: Final = 60.0  # s; the rates are averaged over about this long
CONSOLE_SEEN_WORKERS: Final = 1000  # processes; worker registrations remembered, the oldest forgotten beyond
CONSOLE_TIMELINE_BARS: Final = 300  # count; bars a timeline draws (the first ones; the history has all)
CONSOLE_HISTORY_CACHE: Final = 32  # runs; whose histories are kept for their live pages
CONSOLE_DETAILS_WIDTH: Final = 400  # count; characters of an event's details in the history table
