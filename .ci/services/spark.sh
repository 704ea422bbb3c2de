# shellcheck shell=bash
# Sourced by .ci/run once the test venv exists: a standalone Spark cluster (a master and one
# worker) and a Spark Connect server, all bound to 127.0.0.1, started with the Spark that comes
# with the venv's pyspark (Spark 4 ships the Connect server in its jars: nothing is downloaded).
# Exports the URLs tests/test_spark_cluster.py reads and appends the daemons' PIDs to
# $CI_PIDS_FILE. By hand: CI_PIDS_FILE=/tmp/pids source .ci/services/spark.sh, and later
# kill $(cat /tmp/pids).

start_spark_services() {
  local python="$PWD/.venv/bin/python"
  local home state
  home="$("$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
  state="$(mktemp -d -t driftline-spark.XXXXXX)"

  # spark-daemon.sh keeps its pid files and logs here, and the worker its applications' files.
  export SPARK_HOME="$home" SPARK_PID_DIR="$state/pids" SPARK_LOG_DIR="$state/logs"
  export SPARK_WORKER_DIR="$state/work" SPARK_LOCAL_DIRS="$state/tmp" SPARK_LOCAL_IP=127.0.0.1
  export SPARK_DAEMON_MEMORY=512m SPARK_IDENT_STRING=driftline-ci
  export PYSPARK_PYTHON="$python"  # the executors' Python, should a query need one
  mkdir -p "$SPARK_PID_DIR" "$SPARK_LOG_DIR" "$SPARK_WORKER_DIR" "$SPARK_LOCAL_DIRS"

  # What sbin/start-master.sh, start-worker.sh and start-connect-server.sh run (the pip package
  # of pyspark has only spark-daemon.sh of sbin/).
  local daemon="$home/sbin/spark-daemon.sh"
  bash "$daemon" start org.apache.spark.deploy.master.Master 1 \
    --host 127.0.0.1 --port 7077 --webui-port 18090 >/dev/null
  _record_spark_pid org.apache.spark.deploy.master.Master
  bash "$daemon" start org.apache.spark.deploy.worker.Worker 1 \
    --host 127.0.0.1 --webui-port 18091 --cores 1 --memory 1g spark://127.0.0.1:7077 >/dev/null
  _record_spark_pid org.apache.spark.deploy.worker.Worker
  # The Connect server runs its queries in its own local Spark; its catalog is a Derby
  # metastore beside its warehouse, so results outlive each client's process.
  bash "$daemon" submit org.apache.spark.sql.connect.service.SparkConnectServer 1 \
    --name "Spark Connect server" --master 'local[2]' --driver-memory 1g \
    --driver-java-options "-Dderby.system.home=$state/connect" \
    --conf spark.connect.grpc.binding.address=127.0.0.1 --conf spark.connect.grpc.binding.port=15002 \
    --conf spark.ui.enabled=false --conf spark.sql.shuffle.partitions=4 \
    --conf spark.sql.warehouse.dir="$state/connect/warehouse" --conf spark.sql.catalogImplementation=hive \
    --conf "spark.hadoop.javax.jdo.option.ConnectionURL=jdbc:derby:;databaseName=$state/connect/metastore_db;create=true" \
    >/dev/null
  _record_spark_pid org.apache.spark.sql.connect.service.SparkConnectServer

  _wait_for_spark "the Spark master" 7077 "$SPARK_LOG_DIR"/*Master*.out
  _wait_for_spark "the Spark Connect server" 15002 "$SPARK_LOG_DIR"/*SparkConnectServer*.out
  local waited=0  # the worker is ready once the master has registered it
  until grep -q "Registering worker" "$SPARK_LOG_DIR"/*Master*.out 2>/dev/null; do
    if [ "$waited" -ge 120 ]; then
      echo "the Spark worker did not register with the master in 120 s:" >&2
      tail -n 20 "$SPARK_LOG_DIR"/*Worker*.out >&2
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done

  export DRIFTLINE_TEST_SPARK_MASTER=spark://127.0.0.1:7077
  export DRIFTLINE_TEST_SPARK_CONNECT=sc://127.0.0.1:15002
  unset SPARK_HOME SPARK_PID_DIR SPARK_LOG_DIR SPARK_WORKER_DIR SPARK_LOCAL_DIRS SPARK_DAEMON_MEMORY SPARK_IDENT_STRING
}

_record_spark_pid() {  # spark-daemon.sh names its pid file spark-<ident>-<class>-<instance>.pid
  cat "$SPARK_PID_DIR/spark-$SPARK_IDENT_STRING-$1-1.pid" >>"$CI_PIDS_FILE"
}

_wait_for_spark() {  # what, port, log: until the port accepts a connection (at most 120 s)
  local what="$1" port="$2" log="$3" waited=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if [ "$waited" -ge 120 ]; then
      echo "$what did not answer on 127.0.0.1:$port in 120 s:" >&2
      tail -n 20 "$log" >&2
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

start_spark_services
