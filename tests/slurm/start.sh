#!/usr/bin/env bash
# Start a private single-node SLURM (munge, MariaDB, slurmdbd, slurmctld, slurmd) from Debian's packages,
# with every file under one state folder, so it never touches the system's own daemons or /etc.
#   tests/slurm/start.sh [STATE]     (default STATE: /tmp/mirflow-slurm; needs root)
# Prints `export SLURM_CONF=...` on its last line: clients (sbatch, squeue, sacct) need it in the environment.
# Packages (Debian 12): slurmctld slurmd slurmdbd slurm-client munge mariadb-server.
# Stop with tests/slurm/stop.sh [STATE].
set -euo pipefail
STATE=$(realpath -m "${1:-/tmp/mirflow-slurm}")
PORT_BASE=${MIRFLOW_SLURM_PORT_BASE:-16810}   # ctld +7, slurmd +8, dbd +9, MariaDB +6 (never the system's ports)
say() { echo "slurm-start: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (the daemons run as root here); skip."
for cmd in munged mungekey mariadbd mariadb-install-db mariadb slurmdbd slurmctld slurmd sbatch sacct sacctmgr; do
  command -v "$cmd" >/dev/null || [ -x "/usr/sbin/$cmd" ] || \
    die "missing $cmd: apt-get install -y slurmctld slurmd slurmdbd slurm-client munge mariadb-server"
done
export PATH="$PATH:/usr/sbin"
if [ -f "$STATE/etc/slurm.conf" ] && SLURM_CONF="$STATE/etc/slurm.conf" timeout 5 scontrol ping 2>/dev/null | grep -q UP; then
  say "already running in $STATE"; echo "export SLURM_CONF=$STATE/etc/slurm.conf"; exit 0
fi
other=$(readlink /etc/slurm/slurm.conf 2>/dev/null || true)
if [ -n "$other" ] && [ "$other" != "$STATE/etc/slurm.conf" ] && [ -e "$other" ]; then
  die "another test SLURM is running ($other; stop it with tests/slurm/stop.sh $(dirname "$(dirname "$other")"))"
fi
rm -rf "$STATE"; mkdir -p "$STATE"/{etc,log,munge,db,ctld,d,run}
# On any failure below, stop what was started (keeping the logs for the message).
trap 'rc=$?; if [ $rc != 0 ]; then cp -r "$STATE/log" "$STATE.failed-logs" 2>/dev/null; bash "$(dirname "$0")/stop.sh" "$STATE"; say "logs kept in $STATE.failed-logs"; fi' EXIT
HOST=$(hostname -s)
# This machine's CPUs and memory as slurmd sees them (RealMemory a little below, so the node is never drained
# for having less memory than configured).
read -r CPUS MEM < <(slurmd -C | awk '/^NodeName/{for(i=1;i<=NF;i++){split($i,a,"=");
  if(a[1]=="CPUs")c=a[2]; if(a[1]=="RealMemory")m=a[2]}; print c, int(m*0.95)}')

# munge: a private key and socket.
mungekey -c -k "$STATE/munge/munge.key" 2>/dev/null || dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
chmod 600 "$STATE/munge/munge.key"
munged --force --key-file="$STATE/munge/munge.key" --socket="$STATE/munge/munge.socket" \
  --pid-file="$STATE/run/munged.pid" --log-file="$STATE/log/munged.log" --seed-file="$STATE/munge/seed" </dev/null >/dev/null 2>&1

# MariaDB for slurmdbd (the executor plugin queries job states with sacct, which reads the accounting DB).
mariadb-install-db --user=root --datadir="$STATE/db" --auth-root-authentication-method=normal >"$STATE/log/db-install.log" 2>&1 \
  || die "mariadb-install-db failed: $STATE/log/db-install.log"
mariadbd --no-defaults --user=root --datadir="$STATE/db" --socket="$STATE/run/mysql.sock" --port=$((PORT_BASE+6)) \
  --bind-address=127.0.0.1 --pid-file="$STATE/run/mariadb.pid" --log-error="$STATE/log/mariadb.log" \
  --skip-name-resolve --innodb-buffer-pool-size=64M >/dev/null 2>&1 &
for _ in $(seq 60); do mariadb --no-defaults -S "$STATE/run/mysql.sock" -uroot -e 'select 1' >/dev/null 2>&1 && break; sleep 0.5; done
mariadb --no-defaults -S "$STATE/run/mysql.sock" -uroot -e "
  CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" || die "MariaDB did not start: $STATE/log/mariadb.log"

cat >"$STATE/etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
AuthInfo=socket=$STATE/munge/munge.socket
DbdHost=localhost
DbdPort=$((PORT_BASE+9))
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$((PORT_BASE+6))
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
CONF
chmod 600 "$STATE/etc/slurmdbd.conf"

# One generic GPU. SLURM drops a file-less gpu ("Removing file-less GPU"), so it names /dev/null as the device
# (task/none: no cgroup device confinement reads it). SLURM schedules --gpus=1 against it, so the
# profile's GPU requests are exercised for real; nothing here can use a GPU.
cat >"$STATE/etc/gres.conf" <<CONF
AutoDetect=off
NodeName=$HOST Name=gpu File=/dev/null
CONF
cat >"$STATE/etc/slurm.conf" <<CONF
ClusterName=mirflow
SlurmctldHost=$HOST
SlurmUser=root
SlurmctldPort=$((PORT_BASE+7))
SlurmdPort=$((PORT_BASE+8))
AuthType=auth/munge
AuthInfo=socket=$STATE/munge/munge.socket
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$((PORT_BASE+9))
# For the slurmdbd connection this names the munge socket (slurm.conf(5)).
AccountingStoragePass=$STATE/munge/munge.socket
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=2
# sacct shows the plugin's --comment (rule and wildcards of each submission).
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
MinJobAge=300
SchedulerParameters=sched_interval=2,bf_interval=2
KillWait=5
InactiveLimit=0
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$STATE/etc/slurm.conf"
# The executor plugin deletes every SLURM_* variable inside a job (SLURM_CONF too) before its `srun`, which then
# finds no configuration: point the default path at this one. Only when the machine has none of its own.
if [ ! -e /etc/slurm/slurm.conf ] || [ "$(readlink /etc/slurm/slurm.conf)" = "$SLURM_CONF" ]; then
  mkdir -p /etc/slurm && ln -sfn "$SLURM_CONF" /etc/slurm/slurm.conf
else
  die "/etc/slurm/slurm.conf exists (a real SLURM here?): not starting a test SLURM beside it"
fi

slurmdbd </dev/null >/dev/null 2>&1   # reads slurmdbd.conf beside $SLURM_CONF
for _ in $(seq 40); do timeout 5 sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.5; done
timeout 10 sacctmgr -i add cluster mirflow >/dev/null 2>&1 || true
slurmctld -f "$STATE/etc/slurm.conf" </dev/null >/dev/null 2>&1
slurmd -f "$STATE/etc/slurm.conf" </dev/null >/dev/null 2>&1
for _ in $(seq 40); do timeout 5 sinfo -h -o %T 2>/dev/null | grep -qE '^idle' && break; sleep 0.5; done
timeout 5 sinfo -h -o %T | grep -qE '^idle' || die "node not idle: $(sinfo -h -o '%T %E' 2>&1); logs in $STATE/log"
say "up: node $HOST, $CPUS CPUs, ${MEM} MB, gres gpu:1; state in $STATE"
echo "export SLURM_CONF=$SLURM_CONF"
