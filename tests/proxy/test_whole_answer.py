"""A JSON answer that streams by is kept up to a bound and read whole (firewall/proxy/addons/budgets.py)."""

from __future__ import annotations

import gzip

from firewall.proxy.addons.budgets import READ_WHOLE_UP_TO, Keeping, WholeAnswer
from tests.support import llm_answers as answers


def _fed(reader: WholeAnswer, body: bytes, piece: int = 97) -> list[bytes]:
    out = [reader.feed(body[start : start + piece]) for start in range(0, len(body), piece)]
    reader.feed(b"")
    return out


def test_chunks_pass_on_untouched_and_the_usage_is_read_at_the_end():
    body = answers.chat(100, 20, 40)
    reader = WholeAnswer("chat", "")
    assert b"".join(_fed(reader, body)) == body
    assert (reader.usage().input_tokens, reader.usage().output_tokens) == (100, 20)


def test_a_gzipped_answer_is_unpacked_to_read_it():
    reader = WholeAnswer("embeddings", "gzip")
    _fed(reader, gzip.compress(answers.embeddings(30)))
    assert reader.usage().input_tokens == 30


def test_past_the_bound_nothing_more_is_kept_and_the_usage_is_unreadable():
    padding = b" " * (READ_WHOLE_UP_TO + 1)
    reader = WholeAnswer("embeddings", "")
    reader.feed(padding)
    reader.feed(answers.embeddings(30))
    assert reader.usage() is None and reader._parts == []
    control = WholeAnswer("embeddings", "")
    control.feed(b" " * (READ_WHOLE_UP_TO - 1000))
    control.feed(answers.embeddings(30))
    assert control.usage().input_tokens == 30


def test_a_body_not_valid_in_its_encoding_is_unreadable():
    reader = WholeAnswer("embeddings", "gzip")
    _fed(reader, answers.embeddings(30))  # said gzip, is not
    assert reader.usage() is None


def test_answers_at_once_keep_no_more_than_the_process_bound_and_the_one_past_it_is_unreadable():
    body = answers.embeddings(30)
    keeping = Keeping(2 * len(body))
    first, second, third = (WholeAnswer("embeddings", "", keeping) for _ in range(3))
    for reader in (first, second, third):
        _fed(reader, body)
    assert third.usage() is None and third._parts == []  # past the bound while the other two are kept
    assert keeping.kept == 2 * len(body)
    assert first.usage().input_tokens == 30 and second.usage().input_tokens == 30
    assert keeping.kept == 0  # read: given back
    control = WholeAnswer("embeddings", "", keeping)  # the same answer once the others are read
    _fed(control, body)
    assert control.usage().input_tokens == 30


def test_an_answer_dropped_unread_gives_back_what_it_kept():
    body = answers.embeddings(30)
    keeping = Keeping(len(body))
    dropped = WholeAnswer("embeddings", "", keeping)
    _fed(dropped, body)
    assert keeping.kept == len(body)
    del dropped
    assert keeping.kept == 0
    after = WholeAnswer("embeddings", "", keeping)
    _fed(after, body)
    assert after.usage().input_tokens == 30
