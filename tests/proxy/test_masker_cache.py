"""SecretIndex.masker builds a Masker once per set of entry names and shares it (Maskers are immutable)."""

from firewall.redaction import SecretIndex


def test_the_same_names_get_the_same_masker_and_it_masks_alike():
    index = SecretIndex.build({"openai": "sk-proj-abcdefghijklmnop0123", "github": "ghp_zyxwvutsrqponm9876"})
    first = index.masker(["openai"])
    assert index.masker({"openai"}) is first
    assert index.masker(["openai", "github"]) is not first
    assert first.mask(b"key sk-proj-abcdefghijklmnop0123 ghp_zyxwvutsrqponm9876") == (
        b"key " + b"*" * len("sk-proj-abcdefghijklmnop0123") + b" ghp_zyxwvutsrqponm9876",
        1,
    )
    both = index.masker(["github", "openai"])
    assert both is index.masker(["openai", "github"])
    assert both.mask(b"ghp_zyxwvutsrqponm9876")[1] == 1


def test_a_new_index_starts_without_cached_maskers():
    old = SecretIndex.build({"openai": "sk-proj-abcdefghijklmnop0123"})
    new = SecretIndex.build({"openai": "sk-proj-ZZZZZZZZZZZZZZZZ0123"})
    assert old.masker(["openai"]).mask(b"sk-proj-ZZZZZZZZZZZZZZZZ0123")[1] == 0
    assert new.masker(["openai"]).mask(b"sk-proj-ZZZZZZZZZZZZZZZZ0123")[1] == 1
