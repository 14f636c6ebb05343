#!/bin/sh
# Made by `python -m grctl.nats.authconfig --nsc --account GRCTL=Greeting`: the decentralised (JWT) setup of the same roles.
set -eu
nsc add operator --name grctl --sys --generate-signing-key
# `nsc push` sends the accounts to this node; the nodes pass them on to each other
nsc edit operator --account-jwt-server-url tls://nats1.internal:4222
nsc add account --name GRCTL
nsc edit account --name GRCTL --js-mem-storage -1 --js-disk-storage -1 --js-streams -1 --js-consumer -1
# the engine: every record of the stream, its consumers, the API
nsc add user --account GRCTL --name grctl-engine \
    --allow-pub 'grctl_directive.>,grctl_history.>,grctl_timers.>,grctl_timers_fired,grctl_run.*.*.*.info,grctl_run.*.*.input,grctl_run.*.*.output,grctl_run.*.*.error,grctl_wf_kv.*.*.*,grctl_events.>,grctl_state.run_state.>,grctl_worker_task.>,grctl_bg_task,grctl_registry.>,grctl_latest.*,grctl_meta.*,grctl_sched.>,grctl_sched_timer.*.*,grctl_sched_fired,grctl_outcome.>,grctl_worker_cmd.>,_INBOX.>,$SYS.REQ.USER.INFO,$JS.API.INFO,$JS.API.STREAM.INFO.grctl_state,$JS.API.DIRECT.GET.grctl_state,$JS.API.DIRECT.GET.grctl_state.>,$JS.API.STREAM.MSG.GET.grctl_state,$JS.API.STREAM.CREATE.grctl_state,$JS.API.STREAM.UPDATE.grctl_state,$JS.API.STREAM.PURGE.grctl_state,$JS.API.STREAM.MSG.DELETE.grctl_state,$JS.API.CONSUMER.CREATE.grctl_state,$JS.API.CONSUMER.NAMES.grctl_state,$JS.API.CONSUMER.LIST.grctl_state,$JS.API.CONSUMER.CREATE.grctl_state.>,$JS.API.CONSUMER.INFO.grctl_state.>,$JS.API.CONSUMER.DELETE.grctl_state.>,$JS.API.CONSUMER.DURABLE.CREATE.grctl_state.*,$JS.API.CONSUMER.MSG.NEXT.grctl_state.*,$JS.API.CONSUMER.LEADER.STEPDOWN.grctl_state.*,$JS.ACK.grctl_state.>,$JS.FC.grctl_state.>' \
    --allow-sub '_INBOX.>,grctl_api.>' \
    --allow-pub-response
nsc generate creds --account GRCTL --name grctl-engine > grctl-engine.creds
# a worker host of Greeting
nsc add user --account GRCTL --name grctl-worker \
    --allow-pub 'grctl_api.worker,grctl_api.runs,grctl_history.*.*,grctl_wf_kv.*.*.*,grctl_state.run_state.*.*.claim.*,grctl_directive.Greeting.*.*,grctl_api.child.Greeting.*.*,$JS.API.CONSUMER.INFO.grctl_state.grctl_worker_Greeting,$JS.API.CONSUMER.CREATE.grctl_state.grctl_worker_Greeting.>,$JS.API.CONSUMER.DURABLE.CREATE.grctl_state.grctl_worker_Greeting,$JS.API.CONSUMER.MSG.NEXT.grctl_state.grctl_worker_Greeting,$JS.ACK.grctl_state.grctl_worker_Greeting.>,$SYS.REQ.USER.INFO,$JS.API.INFO,$JS.API.STREAM.INFO.grctl_state,$JS.API.DIRECT.GET.grctl_state,$JS.API.DIRECT.GET.grctl_state.>,$JS.API.STREAM.MSG.GET.grctl_state' \
    --allow-sub '_INBOX.>,grctl_worker_cmd.>,grctl_outcome.>' \
    --allow-pub-response
nsc generate creds --account GRCTL --name grctl-worker > grctl-worker.creds
# the grctl command of an operator: every API command, reads
nsc add user --account GRCTL --name grctl-operator \
    --allow-pub 'grctl_api.>,$SYS.REQ.USER.INFO,$JS.API.INFO,$JS.API.STREAM.INFO.grctl_state,$JS.API.DIRECT.GET.grctl_state,$JS.API.DIRECT.GET.grctl_state.>,$JS.API.STREAM.MSG.GET.grctl_state,$JS.API.CONSUMER.CREATE.grctl_state' \
    --allow-sub '_INBOX.>,grctl_outcome.>'
nsc generate creds --account GRCTL --name grctl-operator > grctl-operator.creds
# an application: starts, signals and waits for runs of Greeting
nsc add user --account GRCTL --name grctl-app \
    --allow-pub 'grctl_api.typed.Greeting.*,grctl_api.describe.*,$SYS.REQ.USER.INFO,$JS.API.INFO,$JS.API.STREAM.INFO.grctl_state,$JS.API.DIRECT.GET.grctl_state,$JS.API.DIRECT.GET.grctl_state.>,$JS.API.STREAM.MSG.GET.grctl_state,$JS.API.CONSUMER.CREATE.grctl_state' \
    --allow-sub '_INBOX.>,grctl_outcome.>'
nsc generate creds --account GRCTL --name grctl-app > grctl-app.creds
# read-only: describe, history, list
nsc add user --account GRCTL --name grctl-reader \
    --allow-pub 'grctl_api.runs,grctl_api.describe.*,$SYS.REQ.USER.INFO,$JS.API.INFO,$JS.API.STREAM.INFO.grctl_state,$JS.API.DIRECT.GET.grctl_state,$JS.API.DIRECT.GET.grctl_state.>,$JS.API.STREAM.MSG.GET.grctl_state,$JS.API.CONSUMER.CREATE.grctl_state' \
    --allow-sub '_INBOX.>'
nsc generate creds --account GRCTL --name grctl-reader > grctl-reader.creds
# the system account's user: cluster operations (grctl cluster peers, remove-peer)
nsc generate creds --account SYS --name sys > sys.creds
# Every node includes resolver.conf instead of accounts.conf (nats-node.conf says how); the
# account JWTs pushed to a node are kept in /var/lib/nats/jwt, a directory the node may write.
nsc generate config --nats-resolver --sys-account SYS \
    | sed "s|^\([[:space:]]*\)dir: .*|\1dir: '/var/lib/nats/jwt'|" > resolver.conf
grep -q "dir: '/var/lib/nats/jwt'" resolver.conf
# Once the nodes run with it, send them the accounts (the nodes' CA trusted for TLS):
#   SSL_CERT_FILE=/etc/nats/tls/ca.pem nsc push --all
