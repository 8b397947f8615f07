"""The memory store: entries, inference, recall, sessions, and the safety of the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from qia_cli import paths
from qia_cli.errors import MemoryCorruptError, QiaError, UsageError
from qia_cli.memory.recall import infer_kind, infer_names, refers_to_session
from qia_cli.memory.store import MAX_SESSIONS, Document, MemoryStore, SessionRecord

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("QIA_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def store(home):
    return MemoryStore()


@pytest.fixture
def pet_store(store):
    store.add("Biscuit is my dog, a three-legged corgi")
    store.add("Biscuit loves chasing tennis balls")
    store.add("Our logo is a blue fox on a white circle")
    store.add("I prefer watercolour illustrations")
    store.add("Grandma lives in Lisbon")
    return store


def texts(entries):
    return [e.text for e in entries]


# --- entries --------------------------------------------------------------------------


def test_store_lives_under_qia_home(store, home):
    assert store.path == home / "data" / "memory.json" == paths.memory_file()
    assert store.list() == []
    assert not store.path.exists()  # reading never creates the file


def test_add_list_show_forget_clear(store):
    a = store.add("Biscuit is my dog, a three-legged corgi")
    b = store.add("Our office is in Leeds", kind="fact", names=["the office"])
    assert a.id.startswith("m") and len(a.id) == 7 and a.id != b.id
    assert [e.id for e in store.list()] == [a.id, b.id]
    assert b.names == ["the office"] and b.kind == "fact"
    assert store.get(a.id).text == a.text
    assert store.get(a.id[:4] if a.id[:4] != b.id[:4] else a.id).id == a.id
    assert store.add("  Biscuit is my   dog, a three-legged corgi ").id == a.id  # same text: same entry
    assert len(store.list()) == 2
    assert store.forget(a.id).id == a.id
    with pytest.raises(UsageError, match="no memory entry"):
        store.get(a.id)
    with pytest.raises(UsageError):
        store.forget("mzzzzzz")
    assert store.clear() == 1
    assert store.list() == []
    with pytest.raises(UsageError):
        store.add("   ")


def test_ambiguous_prefix(store):
    for i in range(40):
        store.add(f"fact number {i}")
    with pytest.raises(UsageError, match="matches"):
        store.get("m")


def test_infer_names_and_kind():
    assert infer_names("Biscuit is my dog, a three-legged corgi") == ["Biscuit", "my dog"]
    assert infer_names("Our logo is a blue fox") == ["our logo"]
    assert infer_names("My sister Anna lives in New York") == ["Anna", "New York", "my sister"]
    assert infer_names("The cake was baked in May by Tom") == ["Tom"]
    assert infer_kind("I prefer watercolour") == "preference"
    assert infer_kind("I like muted colours") == "preference"
    assert infer_kind("always use a 3:2 frame") == "preference"
    assert infer_kind("Biscuit is my dog") == "entity"
    assert infer_kind("Grandma lives in Lisbon") == "fact"


def test_add_infers(store):
    e = store.add("Biscuit is my dog, a three-legged corgi")
    assert (e.kind, e.names) == ("entity", ["Biscuit", "my dog"])
    p = store.add("I prefer watercolour")
    assert (p.kind, p.names) == ("preference", [])
    f = store.add("I prefer watercolour at night", kind="fact")
    assert f.kind == "fact"


def test_export_import_roundtrip(store, home, tmp_path):
    store.add("Biscuit is my dog")
    store.add("I prefer watercolour")
    store.add_session({"request": "a dog", "prompt": "a corgi", "outputs": ["a.png"], "kind": "generate"})
    data = store.export()
    assert data["schema_version"] == 1 and len(data["entries"]) == 2 and len(data["sessions"]) == 1
    json.dumps(data)  # JSON-safe

    other = MemoryStore(tmp_path / "other" / "memory.json")
    other.add("biscuit IS my dog")  # same text, different case: a duplicate
    assert other.import_(data) == 1
    assert other.import_(data) == 0  # duplicates by id are skipped
    assert len(other.list()) == 2 and len(other.sessions()) == 1
    assert other.import_(data, merge=False) == 2
    assert sorted(texts(other.list())) == sorted(texts(store.list()))
    with pytest.raises(UsageError, match="invalid"):
        other.import_({"entries": [{"id": "m1", "kind": "bogus", "text": "x"}]})
    with pytest.raises(QiaError, match="schema_version"):
        other.import_({"schema_version": 99, "entries": []})


# --- recall ---------------------------------------------------------------------------


def test_recall_by_name(pet_store):
    r = pet_store.recall("a poster for Biscuit's birthday")
    assert texts(r.entities) == ["Biscuit is my dog, a three-legged corgi"]
    assert texts(r.facts) == ["Biscuit loves chasing tennis balls"]
    assert texts(r.preferences) == ["I prefer watercolour illustrations"]


def test_recall_by_possessive_reference(pet_store):
    r = pet_store.recall("my dog on the beach")
    assert texts(r.entities) == ["Biscuit is my dog, a three-legged corgi"]
    assert "Biscuit loves chasing tennis balls" in texts(r.facts)  # one hop: my dog -> Biscuit
    assert "Our logo is a blue fox on a white circle" not in texts(r.all())
    r = pet_store.recall("My Dog's first snow")
    assert texts(r.entities) == ["Biscuit is my dog, a three-legged corgi"]


def test_recall_irrelevant_request(pet_store):
    r = pet_store.recall("a mountain lake at dawn")
    assert r.entities == [] and r.facts == []
    assert texts(r.preferences) == ["I prefer watercolour illustrations"]


def test_recall_word_boundaries(pet_store):
    assert pet_store.recall("a biscuits tin").entities == []  # "biscuits" is not "Biscuit"
    assert pet_store.recall("a doghouse in my garden").entities == []
    assert texts(pet_store.recall("our logo on a mug").entities) == ["Our logo is a blue fox on a white circle"]
    # "Grandma lives in Lisbon" is about Grandma: a tram in Lisbon does not bring her in
    assert pet_store.recall("a tram in lisbon").facts == []
    assert texts(pet_store.recall("Grandma feeding pigeons").facts) == ["Grandma lives in Lisbon"]


@pytest.fixture
def family_store(store):
    for text in (
        "My dog Pepper is a black labrador with a red collar",
        "My daughter Maya has curly red hair and green glasses",
        "Our car is a blue VW Beetle",
        "Our house is a white thatched cottage with a green door",
        "My sister's cat Ginger is an orange tabby",
        "My sister Ana is tall with short grey hair",
        "I prefer soft watercolour illustrations",
    ):
        store.add(text)
    return store


@pytest.mark.parametrize(
    "request_",
    [
        "a red apple on a table",
        "a bowl of red peppers",
        "a bowl of red pepper",  # a common noun, after an adjective and an article: not the dog Pepper
        "a beetle on a leaf, macro",
        "a green parrot on a branch",
        "a black labrador puppy in the grass",
        "an orange tabby cat asleep in the sun",
        "a thatched cottage in the rain",
        "a girl with curly red hair and glasses",
        "a blue car parked by a river",
    ],
)
def test_shared_words_recall_nothing(family_store, request_):
    # Colours, breeds, common nouns and adjectives that an entry happens to contain are not references.
    recall = family_store.recall(request_)
    assert recall.entities == [] and recall.facts == []
    assert texts(recall.preferences) == ["I prefer soft watercolour illustrations"]  # preferences still apply


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ("my dog at the beach", "My dog Pepper is a black labrador with a red collar"),
        ("Pepper chasing a ball", "My dog Pepper is a black labrador with a red collar"),
        ("pepper chasing a ball", "My dog Pepper is a black labrador with a red collar"),
        ("our house in the snow", "Our house is a white thatched cottage with a green door"),
        ("my house in the snow", "Our house is a white thatched cottage with a green door"),  # my/our alike
        ("my sister's cat on a sofa", "My sister's cat Ginger is an orange tabby"),
        ("my sister at the beach", "My sister Ana is tall with short grey hair"),
        ("a poster for my dog's birthday", "My dog Pepper is a black labrador with a red collar"),
        ("our car in the mountains", "Our car is a blue VW Beetle"),
    ],
)
def test_references_recall_their_entry_only(family_store, request_, expected):
    assert texts(family_store.recall(request_).entities) == [expected]


def test_recall_sees_other_writers(pet_store):
    assert pet_store.recall("Rex at the park").entities == []
    MemoryStore().add("Rex is our cat")
    assert texts(pet_store.recall("Rex at the park").entities) == ["Rex is our cat"]


def test_touch(pet_store):
    ids = pet_store.recall("Biscuit").ids()
    pet_store.touch(ids)
    for entry in pet_store.list():
        if entry.id in ids:
            assert entry.uses == 1 and entry.last_used is not None


# --- sessions -------------------------------------------------------------------------


def test_sessions_and_find_session(store):
    now = datetime(2025, 6, 10, 15, 0, tzinfo=timezone.utc).astimezone()
    store.add_session(SessionRecord(time=now - timedelta(days=3), request="a red bicycle", prompt="red bike"))
    store.add_session(
        SessionRecord(time=now - timedelta(days=1), request="a poster for Biscuit", prompt="corgi poster")
    )
    store.add_session(SessionRecord(time=now - timedelta(days=1, hours=1), request="a castle", prompt="castle"))
    store.add_session(
        SessionRecord(time=now - timedelta(hours=1), request="a lighthouse", prompt="lighthouse", kind="plan")
    )
    assert [s.request for s in store.sessions(2)] == ["a lighthouse", "a poster for Biscuit"]
    assert store.find_session("like the one I made yesterday", now=now).request == "a poster for Biscuit"
    assert store.find_session("the castle from yesterday", now=now).request == "a castle"
    assert store.find_session("same as last time", now=now).request == "a lighthouse"
    assert store.find_session("the one from earlier today", now=now).request == "a lighthouse"
    assert store.find_session("the bicycle again", now=now).request == "a red bicycle"
    assert refers_to_session("like the one I made yesterday") and not refers_to_session("a dog")
    assert MemoryStore(store.path.parent / "empty.json").find_session("last time") is None


def test_sessions_are_capped(store):
    base = datetime(2025, 1, 1, tzinfo=timezone.utc)
    data = {"sessions": [{"request": f"r{i}", "time": (base + timedelta(minutes=i)).isoformat()} for i in range(510)]}
    store.import_(data)
    store.add_session({"request": "newest"})
    kept = store.sessions()
    assert len(kept) == MAX_SESSIONS and kept[0].request == "newest"
    assert kept[-1].request == "r11"


# --- safety of the file ---------------------------------------------------------------


def test_file_mode_schema_and_backup(store):
    store.add("first fact here")
    assert (store.path.stat().st_mode & 0o777) == 0o600
    assert json.loads(store.path.read_text())["schema_version"] == 1
    assert not store.backup_path.exists()
    before = store.path.read_bytes()
    store.add("second fact here")
    assert store.backup_path.read_bytes() == before
    assert (store.backup_path.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize("content", [b"{not json", b"", b"[1, 2]", b'{"entries": [{"nope": 1}]}', b"\xff\xfe\x00"])
def test_corrupt_file_is_never_replaced(store, content):
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_bytes(content)
    stat = store.path.stat()
    for action in (store.list, lambda: store.add("Biscuit is my dog"), lambda: store.recall("Biscuit"), store.clear):
        with pytest.raises(MemoryCorruptError) as info:
            action()
        assert str(store.path) in info.value.message
        assert "memory.json.bak" in info.value.hint and "qia memory path" in info.value.hint
    assert store.path.read_bytes() == content
    assert store.path.stat().st_mtime_ns == stat.st_mtime_ns
    assert not store.backup_path.exists()
    assert [p.name for p in store.path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_newer_schema_is_refused(store):
    store.path.parent.mkdir(parents=True, exist_ok=True)
    content = b'{"schema_version": 2, "entries": [], "sessions": []}'
    store.path.write_bytes(content)
    with pytest.raises(QiaError, match="schema_version 2"):
        store.list()
    with pytest.raises(QiaError, match="schema_version 2"):
        store.add("a fact")
    assert store.path.read_bytes() == content


def test_failed_serialisation_leaves_old_file(store, monkeypatch):
    store.add("keep me")
    before = store.path.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    with monkeypatch.context() as patch, pytest.raises(RuntimeError):
        patch.setattr(Document, "model_dump_json", broken)
        store.add("never written")
    assert store.path.read_bytes() == before
    assert texts(MemoryStore().list()) == ["keep me"]
    assert texts(store.list()) == ["keep me"]  # the in-process cache was not left edited


def test_failed_write_midway_leaves_old_file(store, monkeypatch):
    store.add("keep me")
    before = store.path.read_bytes()
    real_replace = os.replace

    def crash_on_rename(src, dst):  # the new bytes sit in the temp file, then the write dies
        if Path(dst) == store.path:
            raise OSError(5, "I/O error")
        return real_replace(src, dst)

    with monkeypatch.context() as patch, pytest.raises(QiaError, match="cannot write the memory file .*I/O error"):
        patch.setattr(os, "replace", crash_on_rename)
        store.add("never written")
    assert store.path.read_bytes() == before
    assert texts(MemoryStore().list()) == ["keep me"]
    assert [p.name for p in store.path.parent.iterdir() if p.name.endswith(".tmp")] == []


ADDER = """
import sys
from qia_cli.memory.store import MemoryStore
store = MemoryStore()
for i in range(25):
    store.add(f"process {sys.argv[1]} fact {i}")
"""


def test_parallel_processes_lose_nothing(home):
    env = {**os.environ, "QIA_HOME": str(home), "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", ADDER, str(n)], env=env) for n in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    entries = MemoryStore().list()
    assert len(entries) == 100
    assert len({e.id for e in entries}) == 100
    assert (MemoryStore().path.stat().st_mode & 0o777) == 0o600


# --- limits and hand-written imports (issue 15) -----------------------------------------


def test_hand_written_entries_without_id_import_with_inferred_kind_and_names(store):
    data = [
        {"text": "Biscuit is my dog, a corgi"},
        "I prefer watercolour",
        {"text": "Grandma lives in Lisbon", "kind": "fact"},
        {"id": "", "text": "Our logo is a blue fox"},
    ]
    assert store.import_(data) == 4
    entries = {e.text: e for e in store.list()}
    assert len({e.id for e in entries.values()}) == 4 and all(e.id.startswith("m") for e in entries.values())
    assert (
        entries["Biscuit is my dog, a corgi"].kind == "entity"
        and "Biscuit" in entries["Biscuit is my dog, a corgi"].names
    )
    assert entries["I prefer watercolour"].kind == "preference"
    assert entries["Grandma lives in Lisbon"].kind == "fact"
    assert store.import_(data) == 0  # the same texts again: duplicates
    for bad in ([{"kind": "fact"}], [42], {"entries": "Biscuit"}, [{"text": "\x1b[2J\u200b"}]):
        with pytest.raises(UsageError):
            store.import_(bad)


def test_the_memory_has_a_size_and_a_full_import_writes_nothing(store, monkeypatch):
    import qia_cli.memory.store as store_module

    monkeypatch.setattr(store_module, "MAX_ENTRIES", 3)
    store.add("one fact")
    before = store.path.read_bytes()
    with pytest.raises(UsageError, match="limit is 3"):
        store.import_([f"fact number {i}" for i in range(5)])
    assert store.path.read_bytes() == before
    store.add("two fact")
    store.add("three fact")
    with pytest.raises(UsageError, match="limit is 3"):
        store.add("four fact")
    assert store.add("one fact").text == "one fact"  # a duplicate is not a new entry: still fine
    with pytest.raises(UsageError, match="limit is 1000"):
        store.add("x" * 1001)


def test_import_reads_at_most_the_limit(home, tmp_path, monkeypatch):
    import qia_cli.memory.store as store_module
    from qia_cli.memory.store import read_import

    big = tmp_path / "big.json"
    big.write_text(json.dumps([f"fact {i}" for i in range(200)]))
    monkeypatch.setattr(store_module, "MAX_IMPORT_BYTES", 1000)
    with pytest.raises(UsageError, match="larger than"):
        read_import(big)
    with pytest.raises(UsageError, match="larger than"):
        read_import("/dev/zero")  # no size to stat: read in chunks, stopped at the limit
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(["a fact"]).encode())
    assert read_import(tmp_path / "bom.json") == ["a fact"]
    (tmp_path / "latin1.json").write_bytes(b'["caf\xe9"]')
    with pytest.raises(UsageError, match="UTF-8"):
        read_import(tmp_path / "latin1.json")
    monkeypatch.setattr(store_module, "MAX_IMPORT_BYTES", 8 << 20)
    (tmp_path / "deep.json").write_text("[" * 100_000)
    with pytest.raises(UsageError, match="nested too deeply"):
        read_import(tmp_path / "deep.json")


def test_control_characters_never_reach_the_memory(store):
    entry = store.add("Biscuit\x1b]0;pwned\x07 is my \x1b[31mdog\x1b[0m\u200b, a corgi\x00\x9b2J")
    assert entry.text == "Biscuit is my dog, a corgi" and entry.names == ["Biscuit", "my dog"]
    store.import_([{"text": "Nadia\x07 is my \u202esister", "names": ["Na\x07dia"]}])
    nadia = next(e for e in store.list() if e.text.startswith("Nadia"))
    assert nadia.text == "Nadia is my sister" and nadia.names == ["Nadia"]
    store.import_({"sessions": [{"request": "a \x1b[2Jcat", "prompt": "a cat\x07"}]})
    assert [(s.request, s.prompt) for s in store.sessions()] == [("a cat", "a cat")]
    with pytest.raises(UsageError, match="empty"):
        store.add("\x1b[2J\u200b\x07")
    with pytest.raises(UsageError, match="UTF-8"):
        store.add("caf\udce9")  # argv bytes that were not UTF-8


def test_find_session_matches_the_thing_referred_to_not_the_change(store):
    now = datetime(2025, 6, 10, 15, 0, tzinfo=timezone.utc).astimezone()
    store.add_session(SessionRecord(time=now - timedelta(hours=3), request="a poster for the jazz night", prompt="p"))
    store.add_session(SessionRecord(time=now - timedelta(hours=2), request="a gig poster with a trumpet", prompt="p"))
    store.add_session(
        SessionRecord(time=now - timedelta(hours=1), request="apples in a blue bowl", prompt="apples, blue bowl")
    )
    found = store.find_session("like the poster I made earlier today, but blue", now=now)
    assert found is not None and "poster" in found.request
    assert store.find_session("the one from earlier today, but in blue", now=now).request == "apples in a blue bowl"


@pytest.mark.parametrize(
    ("text", "request_"),
    [
        ("We live in a red-brick terraced house with a yellow front door", "our house in the snow"),
        ("I have a dog called Max", "Max catching a frisbee"),
        ("Our dog is a black labrador named Pepper", "Pepper asleep by the fire"),
        ("We have two cats, both grey", "my cats on the windowsill"),
    ],
)
def test_first_person_entries_are_found_by_their_reference(store, text, request_):
    store.add(text)
    assert texts(store.recall(request_).all()) == [text]


def test_an_instruction_about_all_pictures_is_a_style_preference():
    assert infer_kind("Make my pictures look like linocut prints") == "preference"
    assert infer_kind("Draw all my images in soft pastel") == "preference"


def test_a_verb_after_the_possessive_ends_the_reference(store):
    store.add("My mum makes her lasagne in a chipped red ceramic dish")
    store.add("My grandfather always wears a tweed flat cap")
    assert texts(store.recall("my mum's famous lasagne on the table").all()) == [
        "My mum makes her lasagne in a chipped red ceramic dish"
    ]
    assert texts(store.recall("my grandfather feeding ducks").all()) == ["My grandfather always wears a tweed flat cap"]
