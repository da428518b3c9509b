"""Normalisation and tokens: one written form for Chinese, light stems for English."""

from __future__ import annotations

from tutti.ai.text import normalise, stem, tokens


def test_normalise_folds_width_script_case_and_space():
    assert normalise("ＡＢＣ１２３") == "abc123"
    assert normalise("退货  怎么办理") == normalise("退貨 怎麼辦理") == "退貨 怎麼辦理"
    assert normalise("软件") == normalise("軟體")  # Taiwan vocabulary, not only characters
    assert normalise("  Hello\tWORLD \n") == "hello world"
    assert normalise("") == ""


def test_tokens_chinese_and_english():
    assert tokens("我想退貨，運費多少？") == tokens("我想退货，运费多少?")
    assert "退貨" in tokens("我想退貨") and "運費" in tokens("運費多少")
    assert tokens("Refunds for SHIPPED boxes!") == ["refund", "for", "ship", "box"]
    assert tokens("abc退貨") == ["abc", "退貨"]  # no space between scripts still splits


def test_stem_is_light():
    assert [stem(w) for w in ["refunds", "refunded", "refunding", "cities", "class", "prices", "is"]] == [
        "refund",
        "refund",
        "refund",
        "city",
        "class",
        "price",
        "is",
    ]
