#!/bin/bash
# Build the instance twin's root file system (tests/twin/): Debian bookworm with systemd 252 and
# Python 3.11, as on Amazon Linux 2023 with the python3.11 package the workers install, plus
# cloud-init (run by systemd at boot, reads a NoCloud seed) and the AWS CLI.
#
# Usage: build-rootfs.sh DEST AWSCLI_LOCK PYTHON
#   DEST         folder to create (made under DEST.partial, renamed when complete)
#   AWSCLI_LOCK  hashed requirements for the AWS CLI (requirements/twin-awscli.lock)
#   PYTHON       a host Python 3.11 with pip, to download the AWS CLI wheels
# TWIN_MIRROR overrides the Debian mirror. Downloads happen here only; the tests read DEST.
set -euo pipefail
shopt -s inherit_errexit

dest=$1
lock=$2
python=$3
mirror=${TWIN_MIRROR:-http://deb.debian.org/debian}
work="$dest.partial"

packages=(
  systemd systemd-sysv dbus procps ca-certificates
  python3.11 python3.11-venv python3-venv
  cloud-init
  # cloud-init needs python3-cryptography, whose cffi backend debootstrap's --include does not
  # resolve (a virtual package): without it cloud-init stays unconfigured.
  python3-cffi-backend
)

# A transient mirror error once failed a fresh `make test`: one more try from a clean folder.
bootstrap() {
  rm -rf "$work"
  debootstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" bookworm "$work" "$mirror"
}
bootstrap || { echo "debootstrap failed; retrying once" >&2; bootstrap; }

# The AWS CLI in its own venv (as AL2023's /usr/bin/aws, outside the agent's venv).
wheels="$work/tmp/awscli-wheels"
mkdir -p "$wheels"
"$python" -m pip download -q --disable-pip-version-check --require-hashes --no-deps \
  --only-binary=:all: -d "$wheels" -r "$lock"
cp "$lock" "$wheels/requirements.lock"
chroot "$work" python3.11 -m venv /opt/aws-cli
chroot "$work" /opt/aws-cli/bin/pip install -q --disable-pip-version-check --no-index \
  --require-hashes --find-links /tmp/awscli-wheels -r /tmp/awscli-wheels/requirements.lock
ln -sfn /opt/aws-cli/bin/aws "$work/usr/local/bin/aws"
rm -rf "$wheels"

# cloud-init: the NoCloud seed only (the twin has no EC2 datasource), no network configuration
# (the twin shares a prepared network namespace), and no locale module (it fails in a minimal
# root and would mark cloud-init's status as error).
cat >"$work/etc/cloud/cloud.cfg.d/90-optfleet-twin.cfg" <<'CFG'
datasource_list: [ NoCloud ]
network: {config: disabled}
locale: false
CFG

printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >"$work/etc/hosts"
# Each twin writes its own machine id at first boot, as an AMI's instances do.
: >"$work/etc/machine-id"
# A persistent journal, as on AL2023: the tests read it after reboots and power cuts.
mkdir -p "$work/var/log/journal"
rm -rf "$work"/var/cache/apt/archives/*.deb "$work"/var/lib/apt/lists/*

rm -rf "$dest"
mv "$work" "$dest"
echo "twin root file system ready: $dest"
