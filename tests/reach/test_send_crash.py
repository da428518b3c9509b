"""THE kill test: a real `tutti worker` (Redis queue) sends a LINE campaign to the LINE emulator and is
killed with SIGKILL at random moments, again and again, and restarted each time. When the campaign is
done, the emulator must have received each recipient's message exactly once, the hold-out nothing, and
every delivery row must be sent.

Half of the kills come at a random moment after the worker started (sometimes before it took the job,
sometimes while it takes the audience), half a random moment after it was seen making progress
(between claiming, the provider's answer and the outcome write). After each kill the job is queued
again with `tutti campaign kick` (in production the one-minute tick does it).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from sqlalchemy import func, select

from tests.channels import emulator
from tests.processes import forget_queue, redis_queue_env, run, tutti_env
from tests.reach.campaign_world import ACTOR, add_contacts, connect_line, line_uid, make_campaign
from tutti.platform.db import utcnow
from tutti.reach.campaigns.models import Campaign, CampaignRecipient, Delivery

line_emulator = emulator.line_emulator  # the fixture

KILLS = 22
# enough pushes (~750 at 3/s, over four minutes) that all the kills land mid-send on a fast machine; after the
# last kill the channel is sped up so the rest goes quickly (at 300 named the campaign once finished after
# 18 kills, at 600 once after 21)
NAMED, NAMELESS = 1200, 120
SAME = "週年慶全館 8 折，只到週日！"


def _worker(env: dict, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tutti.cli", "worker"], env=env, stdout=log, stderr=log)


def kick(env: dict, campaign_id: int) -> None:
    """What `tutti campaign kick` does (and the tick, within a minute), without starting a process: put the
    send job on the worker's Redis queue."""
    from huey import RedisHuey

    from tutti.reach.campaigns.jobs import send_campaign

    queue = RedisHuey(env["TUTTI_QUEUE_NAME"], url=env["TUTTI_QUEUE_URL"])
    queue._registry.register(send_campaign.task_class)
    queue.enqueue(send_campaign.s(campaign_id))


def _state(database, campaign_id: int) -> tuple:
    with database.read_session() as db:
        campaign = db.get(Campaign, campaign_id)
        return campaign.status, campaign.finished_at, campaign.heartbeat_at, campaign.sent_count


def _speed_up(database, workspace_id: int, channel_id: int, line_emulator) -> None:
    from tutti.channels import service as channels

    line_emulator.configure(rates={"push": 2000, "multicast": 200})
    with database.session() as db:
        channels.update_channel(db, workspace_id=workspace_id, channel_id=channel_id, actor=ACTOR,
                                config={"push_rate": 1000, "multicast_rate": 100})


def test_a_worker_killed_at_random_moments_sends_each_message_exactly_once(database, workspace_id, line_emulator, tmp_path):
    # the test's secret key: the worker must decrypt the LINE channel's credentials this process stored
    env = redis_queue_env(tutti_env(database.url, tmp_path / "data", campaign_batch_size="15", log_json="false",
                                    secret_key=os.environ["TUTTI_SECRET_KEY"]))
    log = open(tmp_path / "workers.log", "ab")  # noqa: SIM115 - every worker appends; read when something fails
    # slow enough that all the kills land mid-send even on an idle machine (at 30 pushes/s it finished after 8)
    # Tutti's own limiter paces the sends (the emulator allows a little more, so 429s stay rare)
    line_emulator.configure(rates={"push": 5, "multicast": 2})
    channel_id = connect_line(database, workspace_id, line_emulator, push_rate=3, multicast_rate=1)
    named = add_contacts(database, workspace_id, NAMED)
    nameless = add_contacts(database, workspace_id, NAMELESS, names=False, prefix="n")
    campaign_id = make_campaign(database, workspace_id, named + nameless, holdout_percent=10, variants=[
        {"name": "A", "split_percent": 70, "content": {"line": {"messages": [{"type": "text", "text": "{{ name | default('朋友') }}，" + SAME}]}}},
        {"name": "B", "split_percent": 30, "content": {"line": {"messages": [{"type": "text", "text": SAME}]}}}])
    with database.session() as db:
        campaign = db.get(Campaign, campaign_id)
        campaign.status, campaign.started_at = "sending", utcnow()

    rng = random.Random(int(os.environ.get("TUTTI_KILL_SEED", time.time_ns() % 1_000_000)))
    kills, worker = 0, None
    try:
        while kills < KILLS:
            started = utcnow()
            worker = _worker(env, log)
            kick(env, campaign_id)
            if kills % 2 == 0:
                time.sleep(rng.uniform(0.5, 10.0))  # anywhere: start-up, taking the job, the audience, sending
            else:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:  # wait until this worker is seen at work, then a little more
                    _, finished, heartbeat, _ = _state(database, campaign_id)
                    if finished or (heartbeat and heartbeat > started):
                        break
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.0, 0.6))
            finished = _state(database, campaign_id)[1]
            if finished:
                break  # done before all the kills were used: the campaign was too short
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
            kills += 1
        if worker.poll() is not None:
            _speed_up(database, workspace_id, channel_id, line_emulator)  # the kills are spent: finish quickly
            worker = _worker(env, log)
            run(env, "campaign", "kick", str(campaign_id))  # the operator's way, once
        deadline = time.monotonic() + 300
        while not _state(database, campaign_id)[1]:
            assert time.monotonic() < deadline, (f"the campaign did not finish: {_state(database, campaign_id)}\n"
                                                 f"{(tmp_path / 'workers.log').read_text()[-3000:]}")
            time.sleep(0.2)
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
        forget_queue(env)
        log.close()

    assert kills == KILLS, f"the campaign finished after only {kills} kills; make it longer"
    with database.read_session() as db:
        campaign = db.get(Campaign, campaign_id)
        recipients = {r.contact_id: r for r in db.scalars(select(CampaignRecipient).where(CampaignRecipient.campaign_id == campaign_id))}
        statuses = dict(db.execute(select(Delivery.status, func.count()).where(Delivery.campaign_id == campaign_id)
                                   .group_by(Delivery.status)).all())
        names = dict(db.execute(select(Delivery.contact_id, Delivery.variant_id).where(Delivery.campaign_id == campaign_id)).all())
    assert campaign.status == "sent"
    assert statuses == {"sent": campaign.deliveries_count}
    assert campaign.sent_count == campaign.deliveries_count == len(recipients) - campaign.holdout_count
    assert len(recipients) == NAMED + NAMELESS and 0 < campaign.holdout_count < (NAMED + NAMELESS) * 0.15
    duplicates, losses = [], []
    for contact_id, recipient in recipients.items():
        texts = [m["message"]["text"] for m in line_emulator.messages(line_uid(database, contact_id))]
        expected = 0 if recipient.is_holdout else 1
        if len(texts) > expected:
            duplicates.append((contact_id, texts))
        if len(texts) < expected:
            losses.append(contact_id)
        if texts:
            assert texts[0].endswith(SAME) and contact_id in names
    stats = line_emulator.emulator.stats
    assert not duplicates and not losses, f"duplicates: {duplicates[:5]}, losses: {losses[:5]}, emulator: {stats}"
    print(f"\n{kills} kills; emulator: {stats.get('accepted', '')} accepted, "
          f"{stats['rejected_409']} answered 409 (resent after a kill), {stats['rejected_429']} rate-limited")
