"""The rabbitmq_ha execution and state modules against a real 3-node RabbitMQ
cluster (rabbitmq.conf rendered from the state's template): formation by peer
discovery whatever the start order, the join state, the Airflow vhost, users
and policy, and a node loss under a steady Celery publish/consume load with
the Celery settings the airflow state ships, counting lost tasks."""

import os
import subprocess
import sys
import threading
import time

import pytest

from tests.helpers.inventory import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VHOST = "airflow"


def test_three_nodes_started_together_form_one_cluster_by_peer_discovery(loaders, rabbit):
    ret = loaders.states.rabbitmq_ha.cluster_healthy(name="formed", nodes=rabbit.nodes, timeout=240,
                                                     node=rabbit.nodes[0])
    assert ret.result is True, ret.comment
    print(f"\nFIGURE rabbitmq cluster formation: 3 nodes started at once, one healthy cluster after "
          f"{time.monotonic() - rabbit.started_at:.1f} s")
    for i, node in enumerate(rabbit.nodes):
        status = loaders.modules.rabbitmq_ha.cluster_status(node=node)
        assert status["running_nodes"] == sorted(rabbit.nodes), f"{node} sees {status['running_nodes']}"
        assert status["partitions"] == {} and status["alarms"] == []
        assert set(status["versions"]) == set(rabbit.nodes)


def test_health_problems_name_a_node_that_is_not_a_member(loaders, rabbit):
    problems = loaders.modules.rabbitmq_ha.health_problems(rabbit.nodes + ["rmq9@localhost"], node=rabbit.nodes[0])
    assert problems == ["rmq9@localhost is not a member of the cluster"]
    ret = loaders.states.rabbitmq_ha.cluster_healthy(name="too many", nodes=rabbit.nodes + ["rmq9@localhost"],
                                                     timeout=2, interval=1, node=rabbit.nodes[0])
    assert ret.result is False and "rmq9@localhost is not a member" in ret.comment


def test_joined_state_brings_a_reset_node_back_and_is_a_no_op_for_a_member(loaders, rabbit):
    seed, third = rabbit.nodes[0], rabbit.nodes[2]
    # a node rebuilt blank, with no peer list, boots standalone: only the join brings it in
    rabbit.stop_node(2)
    assert loaders.modules.rabbitmq_ha.forget(third, node=seed) is True
    assert loaders.modules.rabbitmq_ha.forget(third, node=seed) is False
    rabbit.wipe_node(2)
    rabbit.start_node(2, peer_discovery=False)
    assert loaders.modules.rabbitmq_ha.await_startup(timeout=120, node=third) is True
    assert loaders.modules.rabbitmq_ha.is_member(seed, node=third) is False

    dry = loaders.states.rabbitmq_ha.joined(name=seed, node=third, test=True)
    assert dry.result is None and dry.changes == {"joined": seed}
    assert loaders.modules.rabbitmq_ha.is_member(seed, node=third) is False

    ret = loaders.states.rabbitmq_ha.joined(name=seed, node=third)
    assert ret.result is True, ret.comment
    assert ret.changes == {"joined": seed}
    again = loaders.states.rabbitmq_ha.joined(name=seed, node=third)
    assert again.result is True and again.changes == {}, again.comment
    healthy = loaders.states.rabbitmq_ha.cluster_healthy(name="rejoined", nodes=rabbit.nodes, timeout=60,
                                                         node=third)
    assert healthy.result is True, healthy.comment


def test_vhost_users_policy_states_apply_once_and_never_show_the_password(loaders, rabbit, generated_secrets):
    node = rabbit.nodes[1]
    secrets = generated_secrets[0]["rabbitmq"]
    st = loaders.states.rabbitmq_ha
    vhost = dict(name=VHOST, default_queue_type="quorum", node=node)
    assert st.vhost_present(test=True, **vhost).result is None
    assert st.vhost_present(**vhost).changes
    assert st.vhost_present(**vhost).changes == {}
    wrong = st.vhost_present(name=VHOST, default_queue_type="classic", node=node)
    assert wrong.result is False and "set at creation" in wrong.comment

    user = dict(name="airflow", password=secrets["airflow_password"], permissions={VHOST: [".*", ".*", ".*"]},
                node=node)
    dry = st.user_present(test=True, **user)
    assert dry.result is None and dry.changes["user"] == "created"
    created = st.user_present(**user)
    assert created.result is True and created.changes["user"] == "created"
    assert st.user_present(**user).changes == {}
    assert loaders.modules.rabbitmq_ha.check_password("airflow", secrets["airflow_password"], node=node) is True
    assert loaders.modules.rabbitmq_ha.check_password("airflow", "not-it", node=node) is False
    rotated = st.user_present(**dict(user, password=secrets["admin_password"]))
    assert rotated.changes == {"password": "changed"}
    assert st.user_present(**user).changes == {"password": "changed"}  # and back
    for ret in (created, rotated):
        assert secrets["airflow_password"] not in str(ret) and secrets["admin_password"] not in str(ret)
    admin = st.user_present(name="admin", password=secrets["admin_password"], tags=["administrator"],
                            permissions={VHOST: [".*", ".*", ".*"]}, node=node)
    assert admin.result is True and admin.changes["tags"]["new"] == ["administrator"]

    assert st.user_absent(name="guest", test=True, node=node).result is None
    assert st.user_absent(name="guest", node=node).changes == {"user": "deleted"}
    assert st.user_absent(name="guest", node=node).changes == {}
    assert "guest" not in loaders.modules.rabbitmq_ha.list_users(node=rabbit.nodes[0])

    policy = dict(name="airflow-quorum", vhost=VHOST, pattern=".*", definition={"delivery-limit": 10}, node=node)
    assert st.policy_present(test=True, **policy).result is None
    assert st.policy_present(**policy).changes["new"]["definition"] == {"delivery-limit": 10}
    assert st.policy_present(**policy).changes == {}
    # cluster-wide: another node sees what was created through this one
    assert loaders.modules.rabbitmq_ha.list_policies(vhost=VHOST, node=rabbit.nodes[2])["airflow-quorum"][
        "definition"] == {"delivery-limit": 10}


def _celery_env(rabbit, generated_secrets, celery_settings_file, record_file, loaders):
    password = generated_secrets[0]["rabbitmq"]["airflow_password"]
    hosts = [rabbit.amqp_address(i) for i in range(3)]
    url = loaders.modules.airflow_ha.broker_url("airflow", password, hosts, 5672, VHOST)
    return dict(os.environ, BROKER_URL=url, HA_CELERY_FILE=celery_settings_file, RECORD_FILE=str(record_file),
                PYTHONPATH=str(REPO))


def _start_worker(env, log, concurrency, loglevel):
    """A Celery worker of tests.helpers.celery_drill_app (the shipped settings), its output in ``log``."""
    return subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "celery"), "-A", "tests.helpers.celery_drill_app", "worker",
         "-P", "threads", "-c", str(concurrency), "--without-gossip", "--without-mingle", "-l", loglevel],
        cwd=str(REPO), env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


@pytest.mark.lab_covered  # the lab's rabbitmq drill and the partition drill's rabbitmq_node_isolated (200 tasks)
def test_node_loss_under_celery_load_loses_no_task(loaders, rabbit, generated_secrets, celery_settings_file,
                                                   tmp_path, monkeypatch):
    """Publish tasks at a steady rate while a Celery worker consumes them; stop
    the node leading the queue midway; every confirmed task must run."""
    record = tmp_path / "record.txt"
    record.touch()
    env = _celery_env(rabbit, generated_secrets, celery_settings_file, record, loaders)
    for key in ("BROKER_URL", "HA_CELERY_FILE", "RECORD_FILE"):
        monkeypatch.setenv(key, env[key])
    worker = _start_worker(env, tmp_path / "worker.log", concurrency=4, loglevel="WARNING")
    try:
        sys.modules.pop("tests.helpers.celery_drill_app", None)
        from tests.helpers.celery_drill_app import app, record as record_task

        total, stop_after, rate = 300, 100, 25.0
        sent, publish_errors, stopped_node = [], [], {}

        def publish():
            for seq in range(total):
                if seq == stop_after:
                    stopped_node["event"].set()
                while True:
                    try:
                        record_task.apply_async(args=[seq])
                        sent.append(seq)
                        break
                    except Exception as exc:  # what Airflow's scheduler would retry too
                        publish_errors.append(f"{seq}: {type(exc).__name__}")
                        time.sleep(0.5)
                time.sleep(1 / rate)

        stopped_node["event"] = threading.Event()
        rabbit.wait(lambda: any(q["name"] == "default" for q in
                                loaders.modules.rabbitmq_ha.list_queues(vhost=VHOST, node=rabbit.nodes[0])),
                    60, "the worker to declare the default queue")
        queues = {q["name"]: q for q in loaders.modules.rabbitmq_ha.list_queues(vhost=VHOST, node=rabbit.nodes[0])}
        assert queues["default"]["type"] == "quorum", queues["default"]
        assert sorted(queues["default"]["members"]) == sorted(rabbit.nodes)
        leader = queues["default"]["leader"]

        publisher = threading.Thread(target=publish)
        started = time.monotonic()
        publisher.start()
        stopped_node["event"].wait(60)
        rabbit.stop_node(rabbit.nodes.index(leader))
        stopped_at = time.monotonic()
        publisher.join(180)
        assert not publisher.is_alive(), "publishing stalled after the node loss"

        def done():
            return len(set(record.read_text().split())) >= total

        rabbit.wait(done, 120, f"all {total} tasks to run", interval=1)
        ran = record.read_text().split()
        lost = set(map(str, sent)) - set(ran)
        duplicates = len(ran) - len(set(ran))
        survivors = [n for n in rabbit.nodes if n != leader]
        after = {q["name"]: q for q in loaders.modules.rabbitmq_ha.list_queues(vhost=VHOST, node=survivors[0])}
        print(f"\nFIGURE rabbitmq node loss: stopped queue leader {leader} after {stop_after} of {total} tasks; "
              f"lost {len(lost)}, ran twice {duplicates}, publish retries {len(publish_errors)}, "
              f"new leader {after['default']['leader']}, all done {time.monotonic() - started:.1f} s "
              f"({time.monotonic() - stopped_at:.1f} s after the stop)")
        assert lost == set()
        assert after["default"]["leader"] in survivors
    finally:
        worker.terminate()
        worker.wait(30)

    # the stopped node comes back as a member and the cluster heals
    rabbit.start_node(rabbit.nodes.index(leader))
    healthy = loaders.states.rabbitmq_ha.cluster_healthy(name="node back", nodes=rabbit.nodes, timeout=120,
                                                         node=survivors[0])
    assert healthy.result is True, healthy.comment
    rabbit.wait(lambda: {q["name"]: q for q in loaders.modules.rabbitmq_ha.list_queues(
        vhost=VHOST, node=leader)}["default"].get("online", []).__len__() == 3, 60, "all 3 queue replicas online")


def test_a_worker_consumes_while_a_broker_of_its_list_hangs(loaders, rabbit, generated_secrets, celery_settings_file,
                                                            tmp_path, monkeypatch):
    """A dead host in the broker list (here: a port that completes TCP and
    never speaks AMQP) must not stop a worker from consuming from the live
    nodes: Celery's own delayed-delivery step loops on it forever."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    record = tmp_path / "record.txt"
    record.touch()
    env = _celery_env(rabbit, generated_secrets, celery_settings_file, record, loaders)
    live = env["BROKER_URL"].split(";")[0]
    env["BROKER_URL"] = f"{live};{live.rsplit('@', 1)[0]}@127.0.0.1:{silent.getsockname()[1]}/{VHOST}"
    for key in ("BROKER_URL", "HA_CELERY_FILE", "RECORD_FILE"):
        monkeypatch.setenv(key, env[key])
    worker = _start_worker(env, tmp_path / "worker.log", concurrency=2, loglevel="INFO")
    try:
        sys.modules.pop("tests.helpers.celery_drill_app", None)
        from tests.helpers.celery_drill_app import record as record_task

        started = time.monotonic()
        record_task.apply_async(args=[1])
        try:
            rabbit.wait(lambda: record.read_text().split() == ["1"], 90, "the task to run", interval=1)
        except Exception:
            raise AssertionError((tmp_path / "worker.log").read_text()[-3000:]) from None
        print(f"\nFIGURE rabbitmq hung node in the broker list: task ran {time.monotonic() - started:.1f} s "
              f"after the worker started")
    finally:
        worker.terminate()
        worker.wait(30)
        silent.close()
