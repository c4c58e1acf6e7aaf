#!/usr/bin/env bash
# Stop the private SLURM started by tests/slurm/start.sh [STATE] and remove its state folder.
set -uo pipefail
STATE=$(realpath -m "${1:-/tmp/mirflow-slurm}")
[ -d "$STATE/run" ] || { echo "slurm-stop: nothing in $STATE" >&2; exit 0; }
export SLURM_CONF="$STATE/etc/slurm.conf" PATH="$PATH:/usr/sbin"
scancel --user=root >/dev/null 2>&1 || true
# Each daemon by its own pid file, in reverse start order, waiting until it is gone.
for d in slurmd slurmctld slurmdbd mariadb munged; do
  f="$STATE/run/$d.pid"; [ -s "$f" ] || continue
  pid=$(cat "$f"); kill "$pid" 2>/dev/null || continue
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
done
[ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$SLURM_CONF" ] && rm -f /etc/slurm/slurm.conf
rm -rf "$STATE"
echo "slurm-stop: stopped, $STATE removed" >&2
