"""Each workspace's own confidence calibration: fitted k-fold on its knowledge by the knowledge job, stored,
picked up by indexes; out-of-scope examples; small knowledge bases on the default (real e5)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tutti.converse.knowledge import calibration, index, service
from tutti.converse.knowledge.jobs import embed_and_calibrate
from tutti.platform.audit import Actor

ACTOR = Actor.cli()

# fourteen items (more than calibration.MIN_ITEMS), four phrasings each, as a small shop would write them
SHOP = {
    "ship-fee": ["運費多少", "買多少免運", "How much is shipping?", "運費怎麼算"],
    "ship-time": ["下單後多久出貨", "幾天會寄出", "When will my order ship?", "出貨要等多久"],
    "returns": ["怎麼退貨", "可以退貨嗎", "How do I return an item?", "退貨流程是什麼"],
    "refund-time": ["退款多久會入帳", "錢什麼時候退給我", "When will I get my refund?", "退款要幾天"],
    "points": ["點數怎麼累積", "紅利點數可以折抵嗎", "How do loyalty points work?", "點數有期限嗎"],
    "hours": ["客服幾點上班", "客服時間", "When is customer service open?", "週末有客服嗎"],
    "stores": ["門市在哪裡", "實體店地址", "Where are your stores?", "台北有門市嗎"],
    "invoice": ["發票怎麼開", "可以開統編嗎", "Can I get a company invoice?", "電子發票在哪看"],
    "payment": ["可以刷卡嗎", "有哪些付款方式", "What payment methods do you accept?", "可以分期嗎"],
    "gift-wrap": ["有禮物包裝嗎", "可以幫我包裝送人嗎", "Do you offer gift wrapping?", "包裝要加錢嗎"],
    "membership": ["怎麼加入會員", "會員有什麼好處", "How do I become a member?", "註冊會員要錢嗎"],
    "address": ["地址填錯了可以改嗎", "想改收件地址", "Can I change my delivery address?", "下單後改地址"],
    "coupon": ["折價券怎麼用", "優惠碼在哪裡輸入", "How do I use a coupon code?", "折扣碼無效"],
    "samples": ["有試用包嗎", "可以索取試用品嗎", "Do you give free samples?", "買東西會送小樣嗎"],
}


@pytest.fixture(scope="module", autouse=True)
def embedding_cache(tmp_path_factory):
    from tutti.ai import embeddings

    embeddings.use_disk_cache(tmp_path_factory.mktemp("vectors") / "embeddings.sqlite")
    yield
    embeddings.use_disk_cache(None)


def shop_jsonl(extra: list[dict] | None = None) -> str:
    rows = [{"id": key, "answer": f"({key})", "questions": questions} for key, questions in SHOP.items()]
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows + (extra or []))


def import_shop(database, workspace_id: int, extra: list[dict] | None = None) -> None:
    with database.session() as db:
        service.import_file(db, workspace_id=workspace_id, actor=ACTOR, filename="shop.jsonl",
                            data=shop_jsonl(extra))


def test_the_threshold_keeps_wrong_answers_within_the_budget():
    rng = np.random.default_rng(7)
    right = rng.random(400) < 0.7
    in_scope = np.r_[np.ones(300, bool), np.zeros(100, bool)]
    right &= in_scope
    confidence = np.where(right, rng.uniform(0.4, 1.0, 400), rng.uniform(0.0, 0.7, 400))
    for budget in (0.0, 0.02, 0.1):
        threshold, figures = calibration.choose_threshold(confidence, right, in_scope, budget)
        answered = confidence >= threshold
        wrong = (answered & in_scope & ~right).sum() / in_scope.sum()
        assert wrong <= budget + 1e-9 and figures["answered_wrong"] == round(wrong, 4)
    # a bigger budget never answers less
    loose, _ = calibration.choose_threshold(confidence, right, in_scope, 0.1)
    strict, _ = calibration.choose_threshold(confidence, right, in_scope, 0.0)
    assert loose <= strict


def test_out_of_scope_hand_offs_weigh_what_hand_off_value_says(monkeypatch):
    """The threshold maximises right answers + HAND_OFF_VALUE × out-of-scope hand-offs: weighing the
    hand-offs less never answers less, and the chosen threshold is the best under its own weight."""
    rng = np.random.default_rng(5)
    in_scope = np.r_[np.ones(600, bool), np.zeros(200, bool)]
    right = (rng.random(800) < 0.9) & in_scope
    # out-of-scope questions overlap the right answers' confidences, so the weight decides where to stop
    confidence = np.where(right, rng.uniform(0.3, 1.0, 800), rng.uniform(0.0, 0.8, 800))
    chosen = {}
    for weight in (1.0, 1 / 3, 0.0):
        monkeypatch.setattr(calibration, "HAND_OFF_VALUE", weight)
        threshold, figures = calibration.choose_threshold(confidence, right, in_scope, 1.0)
        value = figures["answered_right"] + weight * figures["out_of_scope_handed_off"]
        for t in np.unique(confidence):  # no other threshold does better under this weight
            answered = confidence >= t
            other = (answered & right).sum() / 600 + weight * (1 - (answered & ~in_scope).sum() / 200)
            assert other <= value + 1e-3
        chosen[weight] = threshold
    assert chosen[0.0] <= chosen[1 / 3] < chosen[1.0]
    assert chosen[0.0] == confidence[right].min()  # hand-offs worth nothing: answer every right one



def test_cross_lingual_matches_get_their_own_threshold():
    """Cross-lingual matches are right less often and less predictably: one threshold for both lets the
    many same-language examples set it and spends the wrong-answer budget on cross-lingual ones; a
    threshold for each keeps each kind's wrong answers within the budget."""
    rng = np.random.default_rng(11)
    examples = []
    for other in (0.0, 1.0):
        for _ in range(400):
            strength = rng.uniform(0, 1)
            # same language: right when the match is strong; cross-lingual: wrong one time in six at any strength
            right = rng.random() < 0.85 if other else strength > 0.3
            signals = np.array([strength, strength / 2, strength, 0.1, 1.0, 0.3, 0.1, other, -1.0])
            examples.append((signals, bool(right), True))
    for _ in range(200):
        examples.append((np.array([rng.uniform(0, 0.6), 0.05, 0.3, 0.0, 0.0, 0.0, -0.1, float(rng.random() < 0.5), -1.0]),
                         False, False))
    fitted = calibration.fit(examples, items_with_phrasings=50, max_wrong=0.03, max_wrong_other_language=0.03)
    assert fitted.threshold_other_language is not None and fitted.threshold_other_language != fitted.threshold
    confidence = np.array([fitted.confidence(s) for s, _, _ in examples])
    right, in_scope = np.array([r for _, r, _ in examples]), np.array([i for _, _, i in examples])
    one, _ = calibration.choose_threshold(confidence, right, in_scope, 0.03)
    other = np.array([s[calibration.OTHER_LANGUAGE] == 1.0 for s, _, _ in examples]) & in_scope
    assert ((confidence >= one) & other & ~right).sum() / other.sum() > 0.03  # one threshold: over budget there
    for other, threshold in ((0.0, fitted.threshold), (1.0, fitted.threshold_other_language)):
        subset = [(s, r) for s, r, in_scope in examples if in_scope and s[calibration.OTHER_LANGUAGE] == other]
        answered = [r for s, r in subset if fitted.confidence(s) >= fitted.threshold_for(s)]
        assert fitted.threshold_for(subset[0][0]) == threshold
        assert sum(not r for r in answered) / len(subset) <= 0.03 + 1e-9
    # stored and read back, it judges the same way; a calibration stored before it existed uses one threshold
    again = calibration.from_json(fitted.as_json(), fitted_at=1)
    assert again.threshold_other_language == fitted.threshold_other_language
    older = {**fitted.as_json(), "threshold_other_language": None}
    assert calibration.from_json(older, fitted_at=1).threshold_for(examples[400][0]) == fitted.threshold
    # too few cross-lingual examples to choose from: one threshold
    few = [e for e in examples if e[0][calibration.OTHER_LANGUAGE] == 0.0] + [e for e in examples if e[0][calibration.OTHER_LANGUAGE] == 1.0][:10]
    assert calibration.fit(few, items_with_phrasings=50).threshold_other_language is None

def test_out_of_scope_examples_are_a_class_that_takes_probability_from_every_item():
    from tutti.converse.knowledge.index import Rows, _train

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(15, 32))
    def near(points, n):
        v = points + 0.15 * rng.normal(size=(n, 32))
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    item = np.repeat(np.arange(14), 6)
    vectors = near(centres[item], len(item))
    unrelated = near(np.repeat(centres[14:15], 30, axis=0), 30)  # questions no item answers, all alike
    negatives = Rows(unrelated[:20], np.full(20, -1), [f"n{i}" for i in range(20)], np.ones(20, bool))
    question = unrelated[20:]  # more like them, never learnt from
    alone, _ = _train(vectors, item, 14)
    with_negatives, classes = _train(vectors, item, 14, negatives)
    assert with_negatives.classes == 15 and len(classes) == 14  # the last class is no item
    assert alone.proba(question).max(axis=1).mean() > 0.3
    assert with_negatives.proba(question)[:, :14].max(axis=1).mean() < 0.2  # the items' share fell
    assert (np.argmax(with_negatives.proba(vectors)[:, :14], axis=1) == item).mean() > 0.95  # items still found


def test_folds_leave_every_item_something_to_learn_from():
    row_item = np.array([0, 0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3])
    is_phrasing = np.ones(len(row_item), bool)
    fold = calibration.folds_of(row_item, is_phrasing, folds=4)
    assert fold[6] == -1  # item 2 has one phrasing: never left out
    for k in range(4):
        for item in (0, 1, 3):
            assert ((row_item == item) & (fold != k)).any()
    assert sorted(fold[row_item == 3].tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_the_knowledge_job_fits_and_stores_the_calibration_and_indexes_pick_it_up(database, workspace_id):
    import_shop(database, workspace_id)
    index.forget()
    with database.session() as db:
        before = index.get_index(db, workspace_id=workspace_id)
        assert before.calibration.source == "default" and before.model is not None
    prepared = embed_and_calibrate(database, workspace_id=workspace_id)
    assert prepared["threshold"] is not None
    with database.session() as db:
        stored, at = service.stored_calibration(db, workspace_id=workspace_id)
        assert at == service.version(db, workspace_id=workspace_id)
        # each of the 56 phrasings left out once, and asked again as a cross-lingual example (every item
        # here is written in both languages)
        assert stored["signals"] == list(calibration.SIGNALS) and stored["stats"]["in_scope_examples"] == 2 * 56
        after = index.get_index(db, workspace_id=workspace_id)
        assert after.model is before.model  # a new calibration of the same knowledge trains nothing again
        fitted = after.calibration
        assert fitted.source == f"fitted at knowledge version {at}" and fitted.threshold == prepared["threshold"]
        answer = service.match(db, workspace_id=workspace_id, question="請問要買多少錢才免運費")
        assert answer.external_id == "ship-fee" and answer.in_scope and "fitted" in answer.reason
        poem = service.match(db, workspace_id=workspace_id, question="幫我寫一首關於海的詩")
        assert not poem.in_scope
        # an edit moves the version: the last fitted calibration serves until the job fits a new one
        service.create_item(db, workspace_id=workspace_id, actor=ACTOR, external_id="pets",
                            answer="歡迎帶寵物入店。", phrasings=["可以帶狗進店裡嗎", "Can I bring my dog?"])
    with database.session() as db:
        assert index.get_index(db, workspace_id=workspace_id).calibration.source == fitted.source
    assert embed_and_calibrate(database, workspace_id=workspace_id)["threshold"] is not None
    assert embed_and_calibrate(database, workspace_id=workspace_id)["threshold"] is None  # nothing new to fit
    with database.session() as db:
        _, at = service.stored_calibration(db, workspace_id=workspace_id)
        assert at == service.version(db, workspace_id=workspace_id) == fitted_version(fitted) + 1


def test_a_calibration_fitted_on_other_signals_is_refitted_by_the_tick(database, workspace_id):
    """After an upgrade that changes the signals, the stored calibration cannot be read (DEFAULT decides):
    the tick queues the knowledge job, which refits it although the knowledge has not changed."""
    from sqlalchemy import update

    from tutti.converse.knowledge.jobs import refit_outdated_calibrations
    from tutti.converse.knowledge.models import KnowledgeVersion

    import_shop(database, workspace_id)
    assert embed_and_calibrate(database, workspace_id=workspace_id)["threshold"] is not None
    with database.session() as db:
        stored, at = service.stored_calibration(db, workspace_id=workspace_id)
        older = {**stored, "signals": list(calibration.SIGNALS[:-1]), "weights": stored["weights"][:-1]}
        db.execute(update(KnowledgeVersion).where(KnowledgeVersion.workspace_id == workspace_id).values(calibration=older))
    index.forget()
    with database.session() as db:
        assert index.get_index(db, workspace_id=workspace_id).calibration.source == "default"
    refit_outdated_calibrations()  # the queue runs jobs inline in tests
    with database.session() as db:
        stored, again = service.stored_calibration(db, workspace_id=workspace_id)
        assert stored["signals"] == list(calibration.SIGNALS) and again == at
        assert index.get_index(db, workspace_id=workspace_id).calibration.source == f"fitted at knowledge version {at}"
    assert embed_and_calibrate(database, workspace_id=workspace_id)["threshold"] is None  # current now: nothing to fit


def fitted_version(fitted: calibration.Calibration) -> int:
    return int(fitted.source.rsplit(" ", 1)[1])


def test_out_of_scope_examples_are_handed_off_and_never_answered(database, workspace_id):
    litter = ["你們有賣貓砂嗎", "Do you sell cat litter?", "有沒有寵物飼料"]
    import_shop(database, workspace_id, [{"id": "not-ours", "kind": "out_of_scope", "questions": litter}])
    embed_and_calibrate(database, workspace_id=workspace_id)
    index.forget()
    with database.session() as db:
        built = index.get_index(db, workspace_id=workspace_id)
        assert "not-ours" not in {item.external_id for item in built.items}
        assert built.negatives is not None and set(litter) <= set(built.negatives.text)
        for question in litter:
            decision = service.match(db, workspace_id=workspace_id, question=question)
            assert not decision.in_scope and decision.external_id != "not-ours"
        assert service.match(db, workspace_id=workspace_id, question="退款大概幾天會到帳").in_scope
        exported = service.export(db, workspace_id=workspace_id, format="jsonl")
    row = next(json.loads(line) for line in exported.splitlines() if '"not-ours"' in line)
    assert row["kind"] == "out_of_scope" and row["questions"] == litter


def test_an_out_of_scope_item_needs_questions(database, workspace_id):
    from tutti.platform.errors import InvalidInput

    with database.session() as db, pytest.raises(InvalidInput) as error:
        service.import_file(db, workspace_id=workspace_id, actor=ACTOR, filename="x.jsonl",
                            data=json.dumps({"id": "x", "kind": "out_of_scope", "answer": "-"}))
    assert "question" in str(error.value)


def test_a_small_knowledge_base_has_no_classifier_and_uses_the_default(database, workspace_id):
    rows = [{"id": key, "answer": f"({key})", "questions": SHOP[key]} for key in ("ship-fee", "returns", "hours")]
    with database.session() as db:
        service.import_file(db, workspace_id=workspace_id, actor=ACTOR, filename="s.jsonl",
                            data="\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    assert embed_and_calibrate(database, workspace_id=workspace_id)["threshold"] == calibration.DEFAULT.threshold
    index.forget()
    with database.session() as db:
        small = index.get_index(db, workspace_id=workspace_id)
        assert small.model is None and small.calibration.source == "default"
        assert service.match(db, workspace_id=workspace_id, question="運費要多少錢").in_scope
        assert not service.match(db, workspace_id=workspace_id, question="明天台北會下雨嗎").in_scope


def test_cross_lingual_examples_ask_bilingual_items_in_the_language_taken_away():
    from tutti.converse.knowledge.index import ItemInfo, Rows, _cross_lingual_examples, assemble

    rng = np.random.default_rng(5)
    centres, english = rng.normal(size=(14, 32)), rng.normal(size=32)  # English sits off to one side
    rows = []  # (item, text, in English)
    for item in range(14):
        rows += [(item, f"問題{item}之{k}", False) for k in range(4)]
        if item % 2 == 0:  # half the items are written in both languages
            rows += [(item, f"question {item} {k}", True) for k in range(4)]
    item = np.array([r[0] for r in rows])
    v = centres[item] + 0.6 * np.array([[r[2]] for r in rows]) * english + 0.2 * rng.normal(size=(len(rows), 32))
    v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    infos = [ItemInfo(i, f"item-{i}", "faq", f"item {i}", "(answer)", None, None) for i in range(14)]
    built = assemble(1, (1,), infos, Rows(v, item, [r[1] for r in rows], np.ones(len(rows), bool)), {})
    assert built.item_language[0].tolist() == [True, True] and built.item_language[1].tolist() == [False, True]
    asked_in_english = built.features("question 1 0", v[4])
    assert bool(asked_in_english["same_language"][0]) and not asked_in_english["same_language"][1]

    no_negatives = Rows(np.zeros((0, 32), np.float32), np.zeros(0, np.int64), [], np.zeros(0, bool))
    examples = _cross_lingual_examples(built, Rows(v, item, [r[1] for r in rows], np.ones(len(rows), bool)),
                                       no_negatives, classify=True)
    # every phrasing of the seven bilingual items, once, each a cross-lingual match of an in-scope question
    assert len(examples) == 7 * 8
    assert all(s[calibration.OTHER_LANGUAGE] == 1.0 and in_scope for s, _, in_scope in examples)
    assert np.mean([right for _, right, _ in examples]) > 0.8
    # a monolingual knowledge base has none
    zh = np.array([not r[2] for r in rows])
    only_zh = Rows(v[zh], item[zh], [r[1] for r, k in zip(rows, zh) if k], np.ones(int(zh.sum()), bool))
    assert _cross_lingual_examples(built, only_zh, no_negatives, classify=True) == []


def _synthetic(rng, n: int, shift: float) -> list:
    """(signals, right, in scope): in-scope matches right when strong enough, out-of-scope ones weak; `shift`
    lowers every in-scope strength (real questions score lower than left-out phrasings)."""
    out = []
    for k in range(n):
        other = float(k % 5 == 0)
        strength = rng.uniform(0, 1) - shift
        right = strength > (0.4 if other else 0.2) - shift
        out.append((np.array([strength, strength / 2, strength, 0.1, 1.0, 0.3, 0.1, other, -1.0]), bool(right), True))
    for _ in range(n // 4):
        out.append((np.array([rng.uniform(-0.2, 0.5), 0.05, 0.3, 0.0, 0.0, 0.0, -0.1, 0.0, -1.0]), False, False))
    return out


def test_calibration_questions_choose_the_thresholds_together_within_the_cap():
    rng = np.random.default_rng(3)
    examples, asked = _synthetic(rng, 800, 0.0), _synthetic(rng, 400, 0.15)
    fitted = calibration.fit(examples, items_with_phrasings=50, questions=asked)
    assert fitted.stats["thresholds_from"] == "calibration questions" and fitted.stats["calibration_questions"] == 500
    answered = [(right, scope) for s, right, scope in asked if fitted.confidence(s) >= fitted.threshold_for(s)]
    wrong = sum(1 for right, scope in answered if scope and not right) / sum(1 for _, _, scope in asked if scope)
    assert wrong <= calibration.MAX_WRONG_QUESTIONS + 1e-9
    assert fitted.stats["questions_answered_wrong"] == round(wrong, 4)
    # chosen together, the pair does at least as well as each threshold chosen alone with the same cap
    confidence = np.array([fitted.confidence(s) for s, _, _ in asked])
    right = np.array([r for _, r, _ in asked])
    scope = np.array([i for _, _, i in asked])
    cross = np.array([s[calibration.OTHER_LANGUAGE] > 0.5 for s, _, _ in asked])
    weight = calibration.HAND_OFF_VALUE
    together = fitted.stats["questions_answered_right"] + weight * fitted.stats["questions_out_of_scope_handed_off"]
    _, figures = calibration.choose_threshold(confidence, right, scope, calibration.MAX_WRONG_QUESTIONS)
    assert together >= figures["answered_right"] + weight * figures["out_of_scope_handed_off"] - 1e-9
    pair = calibration.choose_thresholds(confidence, right, scope, cross, calibration.MAX_WRONG_QUESTIONS)
    assert (pair[0], pair[1]) == pytest.approx((fitted.threshold, fitted.threshold_other_language), abs=1e-12)
    # the questions weigh in the fit: their lower strengths move the confidence of a middling match down
    plain = calibration.fit(examples, items_with_phrasings=50)
    middling = np.array([0.35, 0.17, 0.35, 0.1, 1.0, 0.3, 0.1, 0.0, -1.0])
    assert fitted.confidence(middling) > plain.confidence(middling)
    # too few in-scope questions: the k-fold budgets choose, as without questions
    few = calibration.fit(examples, items_with_phrasings=50, questions=asked[: calibration.MIN_QUESTIONS - 1])
    assert few.stats["thresholds_from"] == "k-fold"


def test_calibration_questions_are_replaced_all_or_nothing_and_weigh_in_the_fit(database, workspace_id):
    from tutti.converse.knowledge import questions
    from tutti.converse.knowledge.models import KnowledgeCalibrationQuestion
    from tutti.platform.errors import InvalidInput

    import_shop(database, workspace_id)
    good = "\n".join(json.dumps(row, ensure_ascii=False) for row in [
        {"question": "我買了八百塊要付運費嗎", "expected": "ship-fee"},
        {"question": "how long until my parcel leaves the warehouse", "expected": "ship-time"},
        {"question": "你們有賣貓砂嗎", "expected": None},
    ])
    with database.session() as db:
        assert questions.replace(db, workspace_id=workspace_id, actor=ACTOR, filename="q.jsonl", data=good) == {
            "questions": 3, "in_scope": 2, "out_of_scope": 1}
    bad = good + "\n" + json.dumps({"question": "點數呢", "expected": "no-such-item"}) + "\nnot json\n{\"expected\": \"hours\"}"
    with database.session() as db, pytest.raises(InvalidInput) as error:
        questions.replace(db, workspace_id=workspace_id, actor=ACTOR, filename="q.jsonl", data=bad)
    assert [p["row"] for p in error.value.details] == [5, 6]  # not JSON, no question; then the unknown id
    with database.session() as db, pytest.raises(InvalidInput) as error:
        questions.replace(db, workspace_id=workspace_id, actor=ACTOR, filename="q.jsonl",
                          data=good + "\n" + json.dumps({"question": "點數呢", "expected": "no-such-item"}))
    assert error.value.details == [{"row": 4, "field": "expected", "message": "no item 'no-such-item' in this workspace"}]
    with database.session() as db:
        assert questions.counts(db, workspace_id=workspace_id) == {"questions": 3, "in_scope": 2, "out_of_scope": 1}
        csv_text = "question,expected\n客服幾點開始,hours\n可以帶狗嗎,\n"
        assert questions.replace(db, workspace_id=workspace_id, actor=ACTOR, filename="q.csv", data=csv_text) == {
            "questions": 2, "in_scope": 1, "out_of_scope": 1}
    embed_and_calibrate(database, workspace_id=workspace_id)
    with database.session() as db:
        stored, _ = service.stored_calibration(db, workspace_id=workspace_id)
        # two questions weigh in the fit; too few to choose the thresholds
        assert stored["stats"]["calibration_questions"] == 2 and stored["stats"]["thresholds_from"] == "k-fold"
        built = index.get_index(db, workspace_id=workspace_id)
        assert "客服幾點開始" not in built.row_text  # never searched
        asked = index.calibration_questions(db, built)
        position = {item.external_id: i for i, item in enumerate(built.items)}
        assert [(text, expected) for text, _, expected in asked] == [("客服幾點開始", position["hours"]), ("可以帶狗嗎", -1)]
        # a disabled item cannot be answered: its questions become questions to hand off
        hours = db.get(service.KnowledgeItem, built.items[position["hours"]].id)
        hours.enabled = False
        service.bump_version(db, workspace_id=workspace_id)
        db.flush()
        rebuilt = index.get_index(db, workspace_id=workspace_id)
        assert [e for _, _, e in index.calibration_questions(db, rebuilt)] == [-1, -1]
    with database.session() as db:
        service.delete_item(db, workspace_id=workspace_id, actor=ACTOR, item_id=built.items[position["hours"]].id)
        db.flush()
        left = db.query(KnowledgeCalibrationQuestion).filter_by(workspace_id=workspace_id).all()
        assert [q.text for q in left] == ["可以帶狗嗎"]  # an item's questions go with it


def test_a_file_that_is_not_utf8_is_named_and_changes_nothing(database, workspace_id):
    from tutti.converse.knowledge import questions
    from tutti.platform.errors import InvalidInput

    import_shop(database, workspace_id)
    big5 = "question,expected\n運費多少,ship-fee\n".encode("big5")
    for store in (lambda db: questions.replace(db, workspace_id=workspace_id, actor=ACTOR, filename="q.csv", data=big5),
                  lambda db: service.import_file(db, workspace_id=workspace_id, actor=ACTOR, filename="kb.csv", data=big5)):
        with database.session() as db, pytest.raises(InvalidInput) as error:
            store(db)
        assert "is not UTF-8 text" in error.value.message and error.value.field == "file"
    with database.session() as db:
        assert questions.counts(db, workspace_id=workspace_id)["questions"] == 0
        assert service.list_items(db, workspace_id=workspace_id, limit=100)[1] == len(SHOP)
