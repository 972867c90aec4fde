# optfleet worker boot script, body (infra/boot/worker-user-data.sh). The settings above this
# line are rendered at synth time by infra/user_data.py; they hold no secret (the API token stays
# in Secrets Manager and only its name or ARN is passed on).
#
# Steps: python3.11 (dnf when missing; AL2023's stock python3 is 3.9, which boto3 no longer
# supports) -> fetch the two S3 assets -> unpack -> venv from it -> pip install the agent
# from the shipped wheels (no package index) -> workload venv -> `worker-bootstrap install` ->
# journal shipper unit -> systemctl enable --now. Safe to run twice: every step checks a marker
# named after the asset hash and skips work already done.
# Shared helpers and the test overrides (OPTFLEET_ROOT, ...) come from boot/common.sh, rendered
# above this body.

log "installing the optfleet agent for experiment $OPTFLEET_EXPERIMENT_ID"
mkdir -p "$base"
chmod 0755 "$base"
ensure_python

wheelhouse=$(unpack_asset "$WHEELHOUSE_URL" wheelhouse.zip "$WHEELHOUSE_HASH")
make_venv "$base/venv" "$WHEELHOUSE_HASH" --no-index --find-links "$wheelhouse" "optfleet[aws]"

extra_settings=()
command_prefix=""
if [[ -n "$WORKLOAD_URL" ]]; then
  workload=$(unpack_asset "$WORKLOAD_URL" workload.zip "$WORKLOAD_HASH")
  # A relative link, so it resolves the same inside a test root and on the instance.
  ln -sfn "assets/$(basename "$workload")" "$base/workload"
  extra_settings+=(--set "OPTFLEET_WORKDIR=$base_path/workload")
  if [[ -f "$workload/requirements.txt" ]]; then
    wheels="$workload/.optfleet-wheels"
    pip_args=(--find-links "$wheels" -r "$workload/requirements.txt")
    # Wheels for every requirement were built at synth time: no package index needed.
    if [[ -f "$wheels/COMPLETE" ]]; then
      pip_args=(--no-index "${pip_args[@]}")
    fi
    retry 3 make_venv "$base/workload-venv" "$WORKLOAD_HASH" "${pip_args[@]}"
    # The agent runs the command without a shell: a wrapper puts the workload venv first on PATH.
    mkdir -p "$base/bin"
    cat >"$base/bin/in-workload-env" <<WRAPPER
#!/bin/sh
# Runs an optfleet evaluation with the workload's venv first on PATH (written by user data).
VIRTUAL_ENV=$base_path/workload-venv
PATH=$base_path/workload-venv/bin:\$PATH
export VIRTUAL_ENV PATH
exec "\$@"
WRAPPER
    chmod 0755 "$base/bin/in-workload-env"
    command_prefix="$base_path/bin/in-workload-env "
  fi
fi

settings=()
for pair in "${AGENT_SETTINGS[@]}"; do
  if [[ -n "$command_prefix" && "$pair" == OPTFLEET_COMMAND=* ]]; then
    pair="OPTFLEET_COMMAND=$command_prefix${pair#OPTFLEET_COMMAND=}"
  fi
  settings+=(--set "$pair")
done
"$base/venv/bin/worker-bootstrap" install --root "$OPTFLEET_ROOT" "${settings[@]}" "${extra_settings[@]}"

# The agent's journal goes to this experiment's CloudWatch log group through a small shipper
# that runs from the agent's venv (boto3 is in the wheelhouse) as an unprivileged dynamic user.
mkdir -p "$root/etc/systemd/system"
cat >"$root/etc/systemd/system/optfleet-agent-logs.service" <<UNIT
[Unit]
Description=optfleet: ship the optfleet-agent journal to CloudWatch Logs
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=$base_path/venv/bin/python -m infra.runtime.journal_shipper --unit optfleet-agent.service --log-group $LOG_GROUP --region $AWS_REGION_NAME --cursor-file /var/lib/optfleet-logs/cursor
DynamicUser=yes
SupplementaryGroups=systemd-journal
StateDirectory=optfleet-logs
Restart=always
RestartSec=10

[Install]
WantedBy=multi-user.target
UNIT

if [[ "$OPTFLEET_ROOT" == / ]]; then
  systemctl daemon-reload
  systemctl enable --now optfleet-agent.service
  systemctl enable --now optfleet-agent-logs.service
  log "agent started"
else
  log "installed under $OPTFLEET_ROOT; services not started"
fi
