"""Two real `tutti serve` processes on a Redis queue share real-time events: a visitor's stream is held by
one server while the messages are sent to the other (and a person answers from a third process), and
every message arrives on the stream."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from tests.processes import REDIS_URL, forget_queue, redis_queue_env, serving, tutti_env
from tutti.converse import realtime
from tutti.converse.conversations import service as conversations
from tutti.converse.widget import service

pytestmark = pytest.mark.slow  # two servers start and load the embeddings model


def test_stream_on_one_server_gets_messages_sent_through_another(database, workspace_id, tmp_path):
    with database.session() as db:
        key = service.config_for(db, workspace_id=workspace_id).public_key
    env = redis_queue_env(tutti_env(database.url, tmp_path / "data", log_json="false"))
    received: list[dict] = []
    try:
        with serving(env) as one, serving(env) as two:
            send_api, stream_api = f"{one}/widget/api/{key}", f"{two}/widget/api/{key}"
            token = httpx.post(f"{send_api}/session", content=json.dumps({"anonymous_id": "p" * 20})).json()["token"]
            first = httpx.post(f"{send_api}/messages", content=json.dumps({"token": token, "text": "哈囉"}), timeout=120).json()
            conversation = first["conversation_id"]
            stored_before = httpx.get(f"{send_api}/messages", params={"token": token}).json()["messages"]

            def listen():
                with httpx.stream("GET", f"{stream_api}/stream", timeout=60,
                                  params={"token": token, "conversation": conversation, "after": stored_before[-1]["id"]}) as response:
                    for line in response.iter_lines():
                        if line.startswith("data: ") and '"author"' in line:
                            received.append(json.loads(line[6:]))
                        if any(m["author"] == "agent" for m in received):
                            return

            listener = threading.Thread(target=listen, daemon=True)
            listener.start()
            time.sleep(1.5)  # the stream is open and subscribed on server two
            second = httpx.post(f"{send_api}/messages", content=json.dumps({"token": token, "text": "第二則"}), timeout=120)
            assert second.status_code == 200, second.text
            # a person answers from a third process (this one), publishing through the same Redis
            realtime.configure(redis_url=REDIS_URL, prefix=env["TUTTI_QUEUE_NAME"])
            with database.session() as db:
                conversations.post_agent_message(db, workspace_id=workspace_id, conversation_id=conversation, user_id=None,
                                                 text="您好,我是客服")
            listener.join(30)
            stored = httpx.get(f"{send_api}/messages", params={"token": token}).json()["messages"]
    finally:
        realtime._config.clear()
        forget_queue(env)
    newer = [m["id"] for m in stored if m["id"] > stored_before[-1]["id"]]
    assert [m["id"] for m in received] == newer  # the customer's message and the agent's answer, none lost
    assert received[0]["text"] == "第二則" and received[-1]["text"] == "您好,我是客服"
