# optfleet boot scripts, shared part (infra/boot/common.sh): placed by the renderer between the
# settings header and a script's body (worker-user-data.sh, control-user-data.sh).
#
# Overrides for tests (never set on EC2): OPTFLEET_ROOT installs into a throwaway root and skips
# systemctl; OPTFLEET_LOCAL_ASSETS is a folder holding wheelhouse.zip (and workload.zip) used
# instead of the S3 download; OPTFLEET_PYTHON picks the interpreter that builds the venvs.

OPTFLEET_ROOT="${OPTFLEET_ROOT:-/}"
OPTFLEET_LOCAL_ASSETS="${OPTFLEET_LOCAL_ASSETS:-}"
OPTFLEET_PYTHON="${OPTFLEET_PYTHON:-python3}"

# cloud-init may run this without HOME; pip needs none of its cache or version checks at boot.
export HOME="${HOME:-/root}" PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

root="${OPTFLEET_ROOT%/}"
base_path=/opt/optfleet
base="$root$base_path"
umask 022

log() {
  printf 'optfleet-user-data: %s\n' "$*" >&2
}

# Run "$@" up to $1 times with a growing pause: early in boot the network may still be settling.
retry() {
  local attempts=$1 n=1
  shift
  until "$@"; do
    if ((n >= attempts)); then
      log "giving up after $n attempts: $*"
      return 1
    fi
    sleep $((n * 2))
    n=$((n + 1))
  done
}

# fetch_asset URL NAME DEST_DIR: copy one asset archive to DEST_DIR/NAME.
fetch_asset() {
  local url=$1 name=$2 dest=$3
  mkdir -p "$dest"
  if [[ -n "$OPTFLEET_LOCAL_ASSETS" ]]; then
    cp "$OPTFLEET_LOCAL_ASSETS/$name" "$dest/$name"
  else
    retry 5 aws s3 cp --only-show-errors --region "$AWS_REGION_NAME" "$url" "$dest/$name"
  fi
}

# unpack_asset URL NAME HASH: fetch and unpack an asset once; print the folder it lives in.
unpack_asset() {
  local url=$1 name=$2 hash=$3
  local dir="$base/assets/${name%.zip}-$hash"
  if [[ ! -d "$dir" ]]; then
    fetch_asset "$url" "$name" "$base/downloads"
    rm -rf "$dir.partial"
    # Python unzips, so the AMI needs no unzip package.
    "$OPTFLEET_PYTHON" -m zipfile -e "$base/downloads/$name" "$dir.partial"
    mv "$dir.partial" "$dir"
    rm -f "$base/downloads/$name"
  fi
  printf '%s\n' "$dir"
}

# ensure_python: install $OPTFLEET_PYTHON (python3.11) with dnf on an AMI that lacks it (AL2023
# ships python3 = 3.9 and packages python3.11). Never in a test root.
ensure_python() {
  if [[ "$OPTFLEET_ROOT" == / ]] && ! command -v "$OPTFLEET_PYTHON" >/dev/null; then
    log "installing $OPTFLEET_PYTHON"
    retry 3 dnf install -y -q "$OPTFLEET_PYTHON"
  fi
}

# make_venv DIR HASH PIP_ARGS...: (re)build a venv unless it was built from this asset hash.
make_venv() {
  local venv=$1 hash=$2
  shift 2
  if [[ "$(cat "$venv/.optfleet-asset" 2>/dev/null || true)" == "$hash" ]]; then
    log "$venv is up to date"
    return 0
  fi
  # Explicit returns: errexit does not apply inside a function that `retry` runs as a condition.
  rm -rf "$venv" || return 1
  "$OPTFLEET_PYTHON" -m venv "$venv" || return 1
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" || return 1
  printf '%s\n' "$hash" >"$venv/.optfleet-asset"
}

