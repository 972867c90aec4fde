# optfleet control-plane boot script, body (infra/boot/control-user-data.sh). The settings above
# are rendered at synth time by infra/control_user_data.py; they hold no secret, only the ARNs of
# the secrets, which the instance role reads here and writes to a mode-0600 environment file.
#
# Steps: python3.11 (dnf; AL2023's python3 is 3.9, too old for the server) -> fetch and unpack the
# wheelhouse -> server venv (no package index) -> small: attach the data volume and the
# fixed-address network interface, format the volume once, mount it -> secrets -> env file ->
# units (server + journal shipper) -> systemctl enable --now. Safe to run twice.

SERVER_USER=optfleet-server
data_dir=/var/lib/optfleet-server
env_file=/etc/optfleet/server.env

log "installing the optfleet control-plane server (size $CONTROL_SIZE)"
mkdir -p "$base"
chmod 0755 "$base"

ensure_python

wheelhouse=$(unpack_asset "$WHEELHOUSE_URL" wheelhouse.zip "$WHEELHOUSE_HASH")
retry 2 make_venv "$base/server-venv" "$WHEELHOUSE_HASH" --no-index --find-links "$wheelhouse" \
  "optfleet[server,aws]"
boot_helper=("$base/server-venv/bin/python" -m infra.runtime.control_boot --region "$AWS_REGION_NAME")

if [[ "$OPTFLEET_ROOT" == / ]] && ! id "$SERVER_USER" >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir "$data_dir" --shell /sbin/nologin "$SERVER_USER"
fi

mkdir -p "$root$data_dir"
if [[ -n "$DATA_VOLUME_ID" && "$OPTFLEET_ROOT" == / ]]; then
  # The volume outlives instances: a replacement waits until the old instance lets go of it.
  "${boot_helper[@]}" attach-volume --volume-id "$DATA_VOLUME_ID" --device /dev/sdf
  "${boot_helper[@]}" attach-interface --interface-id "$INTERFACE_ID"
  # Nitro instances show EBS volumes as NVMe devices named after the volume id.
  device="/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${DATA_VOLUME_ID/-/}"
  for _ in $(seq 1 60); do
    [[ -e "$device" ]] && break
    [[ -e /dev/sdf ]] && device=/dev/sdf && break
    sleep 2
  done
  [[ -e "$device" ]] || { log "data volume $DATA_VOLUME_ID never appeared"; exit 1; }
  # Format only a blank volume: a replacement instance mounts the data as it was left.
  if ! blkid "$device" >/dev/null 2>&1; then
    mkfs.xfs -q -L optfleet-data "$device"
  fi
  uuid=$(blkid -s UUID -o value "$device")
  if ! grep -q "$uuid" /etc/fstab; then
    printf 'UUID=%s %s xfs defaults,nofail,noatime 0 2\n' "$uuid" "$data_dir" >>/etc/fstab
  fi
  mountpoint -q "$data_dir" || mount "$data_dir"
elif [[ -n "$DATA_VOLUME_ID" ]]; then
  log "test root: not attaching $DATA_VOLUME_ID / $INTERFACE_ID"
fi
if [[ "$OPTFLEET_ROOT" == / ]]; then
  chown "$SERVER_USER:" "$data_dir"
fi
chmod 0700 "$root$data_dir"

# Secrets -> env file (0600, root-owned; systemd reads it before dropping to the server user).
db_args=(--db-url "sqlite:///$data_dir/optfleet.db")
if [[ -n "$DB_SECRET_ARN" ]]; then
  db_args=(--db-secret "$DB_SECRET_ARN")
fi
retry 5 "${boot_helper[@]}" write-env --out "$root$env_file" \
  --token-secret "$TOKEN_SECRET_ARN" "${db_args[@]}"

mkdir -p "$root/etc/systemd/system"
requires_mount=""
if [[ -n "$DATA_VOLUME_ID" ]]; then
  requires_mount="RequiresMountsFor=$data_dir"
fi
cat >"$root/etc/systemd/system/optfleet-server.service" <<UNIT
[Unit]
Description=optfleet suggestion server (SigOpt v1 API) on port $API_PORT
After=network-online.target
Wants=network-online.target
$requires_mount

[Service]
Type=simple
User=$SERVER_USER
EnvironmentFile=$env_file
ExecStart=$base_path/server-venv/bin/python -m infra.runtime.control_server --host 0.0.0.0 --port $API_PORT --db-pool-size $DB_POOL_SIZE
WorkingDirectory=$data_dir
Environment=HOME=$data_dir
Restart=always
RestartSec=5
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=yes
ReadWritePaths=$data_dir

[Install]
WantedBy=multi-user.target
UNIT

cat >"$root/etc/systemd/system/optfleet-server-logs.service" <<UNIT
[Unit]
Description=optfleet: ship the optfleet-server journal to CloudWatch Logs
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=$base_path/server-venv/bin/python -m infra.runtime.journal_shipper --unit optfleet-server.service --log-group $LOG_GROUP --region $AWS_REGION_NAME --cursor-file /var/lib/optfleet-server-logs/cursor
DynamicUser=yes
SupplementaryGroups=systemd-journal
StateDirectory=optfleet-server-logs
Restart=always
RestartSec=10

[Install]
WantedBy=multi-user.target
UNIT

if [[ "$OPTFLEET_ROOT" == / ]]; then
  systemctl daemon-reload
  systemctl enable --now optfleet-server.service
  systemctl enable --now optfleet-server-logs.service
  log "server started on port $API_PORT"
else
  log "installed under $OPTFLEET_ROOT; services not started"
fi
