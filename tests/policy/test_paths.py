import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firewall.policy.paths import AmbiguousPath, CanonicalPath, GlobError, canonicalize, compile_glob

PROPERTY = settings(max_examples=400, deadline=None)


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("/", "/", ""),
        ("/v1/files", "/v1/files", ""),
        ("/v1/./files", "/v1/files", ""),
        ("/v1//files", "/v1/files", ""),
        ("//v1///files", "/v1/files", ""),
        ("/v1/%66iles", "/v1/files", ""),
        ("/v1/%7e%2D%5F%2e%41", "/v1/~-_.A", ""),
        ("/v1/images/../files", "/v1/files", ""),
        ("/v1/%2e%2e/x", "/x", ""),
        ("/v1/.%2E/x", "/x", ""),
        ("/v1/%2e/x", "/v1/x", ""),
        ("/V1/FILES", "/V1/FILES", ""),
        ("/v1/models/", "/v1/models/", ""),
        ("/v1/models//", "/v1/models/", ""),
        ("/a/b/..", "/a/", ""),
        ("/a/b/.", "/a/b/", ""),
        ("/a/..", "/", ""),
        ("/./", "/", ""),
        ("//", "/", ""),
        ("/a%21b", "/a%21b", ""),  # a reserved character stays encoded
        ("/a!b", "/a!b", ""),
        ("/caf%c3%a9", "/caf%C3%A9", ""),
        ("/café", "/caf%C3%A9", ""),
        ("/a b", "/a%20b", ""),
        ("/a%20b", "/a%20b", ""),
        ("/100%25", "/100%25", ""),
        ("/%25zz", "/%25zz", ""),
        ("/%3F", "/%3F", ""),
        ("/%F0%9F%98%80", "/%F0%9F%98%80", ""),
        ("/v1/files?purpose=fine-tune", "/v1/files", "purpose=fine-tune"),
        ("/v1/files?a=%2F&b=..", "/v1/files", "a=%2F&b=.."),  # the query is kept as sent
        ("/v1/files?", "/v1/files", ""),
        ("/v1?a?b", "/v1", "a?b"),
        ("/v1?a;b\\c", "/v1", "a;b\\c"),
        ("/*/x", "/*/x", ""),
    ],
)
def test_canonical_form(target, path, query):
    assert canonicalize(target) == CanonicalPath(path, query)


@pytest.mark.parametrize(
    ("target", "reason", "offset"),
    [
        ("", "not origin-form", 0),
        ("v1/files", "not origin-form", 0),
        ("http://x/y", "not origin-form", 0),
        ("*", "not origin-form", 0),
        ("/a#frag", "fragment", 2),
        ("/a?b#frag", "fragment", 4),
        ("/a\nb", "control character", 2),
        ("/a\x7f", "control character", 2),
        ("/a?b=\r\n", "control character", 5),
        ("/a\\b", "backslash", 2),
        ("/a;jsessionid=1", "semicolon parameter", 2),
        ("/a/b;/c", "semicolon parameter", 4),
        ("/v1%2Ffiles", "encoded slash", 3),
        ("/v1%2ffiles", "encoded slash", 3),
        ("/v1%5cfiles", "encoded backslash", 3),
        ("/v1%5Cfiles", "encoded backslash", 3),
        ("/v1%00", "encoded nul", 3),
        ("/v1%0A", "control character", 3),
        ("/v1%7f", "control character", 3),
        ("/v1/%252F", "double encoding", 4),
        ("/v1/%2541", "double encoding", 4),
        ("/v1/%25%32%46", "double encoding", 4),
        ("/v1/%25a%46", "double encoding", 4),
        ("/%G1", "invalid percent-encoding", 1),
        ("/a%4", "invalid percent-encoding", 2),
        ("/a%", "invalid percent-encoding", 2),
        ("/a%%41", "invalid percent-encoding", 2),
        ("/..", "dot-dot above root", 1),
        ("/%2e%2e", "dot-dot above root", 1),
        ("/a/../../b", "dot-dot above root", 6),
        ("/a/..//../b", "dot-dot above root", 7),
        ("/%C0%AF", "invalid utf-8", 1),
        ("/x/%FF", "invalid utf-8", 3),
        ("/%C3", "invalid utf-8", 1),
        ("/%ED%A0%80", "invalid utf-8", 1),  # an encoded surrogate
        ("/\ud800", "invalid utf-8", 1),
    ],
)
def test_ambiguous_target(target, reason, offset):
    with pytest.raises(AmbiguousPath) as caught:
        canonicalize(target)
    assert caught.value.reason == reason
    assert caught.value.offset == offset
    assert str(caught.value) == f"{reason} in path {target!r}"


@pytest.mark.parametrize(
    ("glob", "path", "expected"),
    [
        ("/v1/files", "/v1/files", True),
        ("/v1/files", "/v1/files/", True),
        ("/v1/files/", "/v1/files", True),
        ("/v1/files", "/v1/files/x", False),
        ("/v1/files", "/v1/Files", False),
        ("/v1/*", "/v1/files", True),
        ("/v1/*", "/v1/", False),
        ("/v1/*", "/v1", False),
        ("/v1/*", "/v1/a/b", False),
        ("/v1/files/**", "/v1/files", True),
        ("/v1/files/**", "/v1/files/", True),
        ("/v1/files/**", "/v1/files/a/b", True),
        ("/v1/files/**", "/v1/filesx", False),
        ("/v1/**/content", "/v1/content", True),
        ("/v1/**/content", "/v1/a/b/content", True),
        ("/v1/**/content", "/v1/a/b/content/x", False),
        ("/**", "/", True),
        ("/**", "/anything/at/all/", True),
        ("/", "/", True),
        ("/", "/a", False),
        ("/v1/models/gpt-*", "/v1/models/gpt-4o", True),
        ("/v1/models/gpt-*", "/v1/models/gpt-", True),
        ("/v1/models/gpt-*", "/v1/models/gpt-4o/x", False),
        ("/v1/models/gpt-*", "/v1/models/o1", False),
        ("/a*b*c", "/abc", True),
        ("/a*b*c", "/axxbyyc", True),
        ("/a*b*c", "/axxbyy", False),
        ("/a.b", "/axb", False),  # "." is literal
        ("/a+", "/aa", False),  # "+" is literal
        ("/**/**/x", "/x", True),
        ("/caf%C3%A9", "/caf%C3%A9", True),
    ],
)
def test_glob_matches(glob, path, expected):
    assert compile_glob(glob).matches(path) is expected


@pytest.mark.parametrize(
    ("glob", "message", "offset"),
    [
        ("v1/files", 'a path glob starts with "/"', 0),
        ("", 'a path glob starts with "/"', 0),
        ("/v1/files?x=1", "a path glob has no query; match the query with `when query.NAME ...`", 9),
        ("/v1/fil?s", "a path glob has no query; match the query with `when query.NAME ...`", 7),
        ("/v1/files#x", "a path glob has no query; match the query with `when query.NAME ...`", 9),
        ("/v1/./x", "glob is not canonical; write /v1/x", 4),
        ("/v1//x", "glob is not canonical; write /v1/x", 4),
        ("/v1/%66iles", "glob is not canonical; write /v1/files", 4),
        ("/caf%c3%a9", "glob is not canonical; write /caf%C3%A9", 5),
        ("/v1/a/..", "glob is not canonical; write /v1/", 4),
        ("/v1/%2F", "glob is not a valid path: encoded slash", 4),
        ("/v1/..", "glob is not canonical; write /", 1),
        ("/..", "glob is not a valid path: dot-dot above root", 1),
        ("/v1;x", "glob is not a valid path: semicolon parameter", 3),
        ("/v1/a**", '"**" must be a whole segment, as in "/v1/**"', 4),
        ("/v1/***", '"**" must be a whole segment, as in "/v1/**"', 4),
    ],
)
def test_glob_error(glob, message, offset):
    with pytest.raises(GlobError) as caught:
        compile_glob(glob)
    assert str(caught.value) == message
    assert caught.value.offset == offset


def test_globs_compare_by_text():
    assert compile_glob("/v1/*") == compile_glob("/v1/*")
    assert hash(compile_glob("/v1/*")) == hash(compile_glob("/v1/*"))
    assert compile_glob("/v1/*") != compile_glob("/v1/**")


# --- Property: canonical form is a fixed point --------------------------------

_TARGET_PIECES = st.sampled_from(
    ["/", "//", ".", "..", "a", "B", "~", "é", " ", "!", "*", "%", "2", "5", "e", "F",
     "%2e", "%2E", "%25", "%41", "%7e", "%c3", "%a9", "%C3%A9", "%20", "%3B", "%32%46", "%4", "?", "x=1"]
)  # fmt: skip


def _canonical_or_none(target: str) -> CanonicalPath | None:
    try:
        return canonicalize(target)
    except AmbiguousPath:
        return None


@PROPERTY
@given(st.lists(_TARGET_PIECES, max_size=12).map(lambda pieces: "/" + "".join(pieces)))
def test_canonical_form_of_built_targets_is_a_fixed_point(target):
    canonical = _canonical_or_none(target)
    if canonical is not None:
        assert canonicalize(canonical.path) == CanonicalPath(canonical.path, "")


@PROPERTY
@given(st.text(max_size=30).map(lambda text: "/" + text))
def test_canonical_form_of_any_text_is_a_fixed_point(target):
    canonical = _canonical_or_none(target)  # anything else raised fails the test
    if canonical is not None:
        assert canonicalize(canonical.path) == CanonicalPath(canonical.path, "")


# --- Property: canonical form equals a simple reference -----------------------

_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_KEPT_RAW = "!$&'()*+,=:@"  # reserved characters that stand for themselves
_ENCODED_RAW = ' "<>[]^`{|}é€😀'  # characters that may not appear raw in a path


def _escapes(char: str, upper: bool) -> str:
    return "".join(f"%{byte:02X}" if upper else f"%{byte:02x}" for byte in char.encode())


@st.composite
def _written_char(draw) -> tuple[str, str]:
    """One character as a client might write it, and its canonical spelling."""
    char = draw(st.sampled_from(_UNRESERVED + _KEPT_RAW + _ENCODED_RAW))
    if draw(st.booleans()):
        written = char
    else:
        written = _escapes(char, upper=draw(st.booleans()))
    if char in _UNRESERVED:
        return written, char
    if char in _KEPT_RAW and written == char:
        return written, char
    return written, _escapes(char, upper=True)


@st.composite
def _written_segment(draw) -> tuple[str, str]:
    chars = draw(st.lists(_written_char(), min_size=1, max_size=5))
    canonical = "".join(c for _, c in chars)
    if canonical in (".", ".."):
        canonical += "x"
        chars.append(("x", "x"))
    return "".join(w for w, _ in chars), canonical


_NOISE = st.sampled_from(["", "", "/", "./", "%2e/", ".//", "zz/../", "zz/%2E%2e/"])


@PROPERTY
@given(
    segments=st.lists(st.tuples(_NOISE, _written_segment()), max_size=5),
    trailer=st.sampled_from(["", "/", "/.", "/./", "//"]),
    query=st.sampled_from(["", "?", "?a=%2F", "?x=..&y"]),
)
def test_canonical_form_equals_reference(segments, trailer, query):
    written = "".join("/" + noise + segment for noise, (segment, _) in segments) + trailer
    expected = "/" + "/".join(canonical for _, (_, canonical) in segments)
    if segments and trailer:
        expected += "/"
    assert canonicalize((written or "/") + query) == CanonicalPath(expected, query.removeprefix("?"))


# --- Property: glob matching equals a recursive reference ---------------------


def _reference_chars_match(pattern: str, text: str) -> bool:
    """Within a segment: "*" is any run of characters, even none."""
    if not pattern:
        return not text
    if pattern[0] == "*":
        return any(_reference_chars_match(pattern[1:], text[i:]) for i in range(len(text) + 1))
    return bool(text) and pattern[0] == text[0] and _reference_chars_match(pattern[1:], text[1:])


def _reference_segment_match(pattern: str, segment: str) -> bool:
    if pattern == "*":
        return segment != ""
    return _reference_chars_match(pattern, segment)


def _reference_match(globs: list[str], segments: list[str]) -> bool:
    if not globs:
        return not segments
    head, rest = globs[0], globs[1:]
    if head == "**":
        return any(_reference_match(rest, segments[i:]) for i in range(len(segments) + 1))
    return bool(segments) and _reference_segment_match(head, segments[0]) and _reference_match(rest, segments[1:])


_PATH_SEGMENT = st.text(alphabet="ab.+(", min_size=1, max_size=3).filter(lambda s: s not in (".", ".."))
_GLOB_SEGMENT = st.one_of(
    st.sampled_from(["*", "**"]),
    _PATH_SEGMENT,
    st.text(alphabet="ab.*", min_size=2, max_size=4).filter(lambda s: "**" not in s and s not in (".", "..")),
)


@PROPERTY
@given(
    globs=st.lists(_GLOB_SEGMENT, max_size=4),
    glob_slash=st.booleans(),
    segments=st.lists(_PATH_SEGMENT, max_size=5),
    path_slash=st.booleans(),
)
def test_glob_matching_equals_reference(globs, glob_slash, segments, path_slash):
    glob = "/" + "/".join(globs) + ("/" if glob_slash and globs else "")
    path = "/" + "/".join(segments) + ("/" if path_slash and segments else "")
    assert compile_glob(glob).matches(path) is _reference_match(globs, segments)
