"""Long-term memory: the memory tools act for the calling user only, recall reaches the plan
prompt, and two users never see each other's memories or notes."""

from __future__ import annotations

import asyncio

import memory.store as store
from agent.config import Settings
from memory.long_term import LongTermMemory
from memory.store import open_collections
from tests.conftest import call, calls, say, write_script
from tests.memory_fixtures import encoder, memory_agent, prompts_for  # noqa: F401 - fixture

ALICE_FACT = "The user prefers watercolour style."


def test_two_users_are_isolated_through_tools_recall_and_listing(tmp_path, encoder):  # noqa: F811
    alice = memory_agent(
        write_script(
            tmp_path / "a.jsonl",
            say("1. Remember the style"),
            calls(call("remember", {"text": ALICE_FACT}, "m1")),
            say("Got it: watercolour."),
        ),
        encoder,
    )
    shared = alice.memory  # one store, as in one server process
    bob = memory_agent(
        write_script(
            tmp_path / "b.jsonl",
            say("1. Look up the style"),
            calls(call("recall", {"query": "preferred painting style"}, "r1")),
            say("I don't know your style yet."),
        ),
        encoder,
        memory=shared,
    )
    later = write_script(tmp_path / "c.jsonl", say("1. Answer from memory"), say("Watercolour."))
    alice_later, bob_later = memory_agent(later, encoder, memory=shared), memory_agent(later, encoder, memory=shared)

    async def go():
        await alice.arun("I like watercolour, remember that.", thread_id="a1", user_id="alice")
        bob_result = await bob.arun("Which painting style do I like?", thread_id="b1", user_id="bob")
        # A later turn recalls the memory into the plan prompt for Alice only.
        await alice_later.arun("Which painting style do I like?", thread_id="a2", user_id="alice")
        await bob_later.arun("Which painting style do I like?", thread_id="b2", user_id="bob")
        return bob_result, await alice.memories("alice"), await alice.memories("bob")

    bob_result, alice_items, bob_items = asyncio.run(go())
    assert [m["text"] for m in alice_items] == [ALICE_FACT] and bob_items == []
    assert bob_result.steps[0]["tool"] == "recall" and bob_result.steps[0]["result"] == "No memories match."
    assert ALICE_FACT in prompts_for(alice_later, "plan")[0]
    assert ALICE_FACT in prompts_for(alice_later, "act")[0]
    assert "watercolour" not in prompts_for(bob_later, "plan")[0]


def test_store_level_isolation_forget_and_delete(tmp_path, encoder):  # noqa: F811
    agent = memory_agent(write_script(tmp_path / "s.jsonl", say("unused")), encoder)
    mem = agent.memory

    async def go():
        a = await mem.remember("alice", "My cat is called Tom.")
        again = await mem.remember("alice", "My cat is called Tom.")  # a duplicate updates, not adds
        await mem.remember("alice.smith@example.com", "I live in Lisbon.")  # dots in ids are fine
        b = await mem.remember("bob", "Bob's cat is called Felix.")
        note = await mem.add_note("alice", task="Draw a cat", reflection="Ask which style first.", outcome="failed: wrong style")
        checks = {
            "dup": again.id == a.id,
            "alice_search": [m.text for m in await mem.recall("alice", "cat name", 5)],
            "bob_search": [m.text for m in await mem.recall("bob", "cat name", 5)],
            "bob_notes": await agent.notes("bob"),
            "bob_cannot_delete": await agent.forget("bob", a.id),
            "bob_cannot_delete_note": await agent.forget("bob", note.id),
            "bob_cannot_forget_by_text": await mem.forget("bob", "My cat is called Tom."),
        }
        checks["forgot"] = [m.text for m in await mem.forget("alice", "the name of my cat")]
        checks["alice_left"] = await agent.memories("alice")
        checks["bob_left"] = [m["id"] for m in await agent.memories("bob")] == [b.id]
        checks["note_deleted"] = await agent.forget("alice", note.id)
        checks["dotted"] = [m["text"] for m in await agent.memories("alice.smith@example.com")]
        return checks

    c = asyncio.run(go())
    assert c["dup"]
    assert c["alice_search"] == ["My cat is called Tom."]
    assert c["bob_search"] == ["Bob's cat is called Felix."]
    assert c["bob_notes"] == [] and not c["bob_cannot_delete"] and not c["bob_cannot_delete_note"]
    assert all("Tom" not in m.text for m in c["bob_cannot_forget_by_text"])  # at most Bob's own
    assert c["forgot"] == ["My cat is called Tom."] and c["alice_left"] == []
    assert c["note_deleted"] and c["dotted"] == ["I live in Lisbon."]


def test_chinese_question_recalls_an_english_memory(tmp_path, encoder):  # noqa: F811
    agent = memory_agent(write_script(tmp_path / "s.jsonl", say("unused")), encoder)

    async def go():
        await agent.memory.remember("u", "I prefer watercolour style for pictures.")
        return await agent.memory.recall("u", "我喜欢什么画风?", 3, Settings().memory.recall_min_score)

    assert [m.text for m in asyncio.run(go())] == ["I prefer watercolour style for pictures."]


def test_many_users_with_the_same_sentence_each_keep_and_find_their_own(tmp_path, encoder):  # noqa: F811
    # The load bench's case: identical vectors across users. Chroma's HNSW graph lost items when
    # one of them was rewritten, so the duplicate check missed a user's own copy and recall
    # came back empty; merging a near-duplicate (the lower-case line) rewrites the vector.
    mem = LongTermMemory(open_collections(tmp_path / "memory"), encoder)
    users = [f"user{i}" for i in range(50)]
    same, variant = "The user is running a load test.", "the user is running a load test."

    async def go():
        for text in (same, same, variant):
            for user in users:
                await mem.remember(user, text)
        kept = {user: [m.text for m in await mem.list("memory", user)] for user in users}
        found = {user: [m.text for m in await mem.recall(user, same, 1)] for user in users}
        return kept, found

    kept, found = asyncio.run(go())
    assert {u: t for u, t in kept.items() if t != [variant]} == {}
    assert {u: t for u, t in found.items() if t != [variant]} == {}


def test_an_owner_above_the_exact_limit_is_searched_through_the_index(tmp_path, encoder, monkeypatch):  # noqa: F811
    monkeypatch.setattr(store, "EXACT_LIMIT", 2)
    monkeypatch.setattr(store, "SMALL_LIMIT", 1)
    mem = LongTermMemory(open_collections(tmp_path / "memory"), encoder)
    facts = ["My cat is called Tom.", "I live in Lisbon.", "I prefer watercolour style."]

    async def go():
        for fact in facts:
            await mem.remember("alice", fact)
        await mem.remember("bob", "Bob's cat is called Felix.")  # the filter must keep it out
        return [m.text for m in await mem.recall("alice", "what is my cat's name", 4)]

    alice = asyncio.run(go())
    assert alice[0] == "My cat is called Tom." and sorted(alice) == sorted(facts)


def test_the_one_call_read_of_a_small_owner_ranks_as_the_exact_search(tmp_path, encoder, monkeypatch):  # noqa: F811
    mem = LongTermMemory(open_collections(tmp_path / "memory"), encoder)
    facts = ["My cat is called Tom.", "I live in Lisbon.", "I prefer watercolour style.", "My dog is called Rex."]

    async def recall():
        return [(m.id, m.text, round(m.score, 5)) for m in await mem.recall("alice", "what are my pets called", 3)]

    async def fill():
        for fact in facts:
            await mem.remember("alice", fact)
        await mem.remember("bob", "Bob's cat is called Felix.")

    asyncio.run(fill())
    small = asyncio.run(recall())
    monkeypatch.setattr(store, "SMALL_LIMIT", 1)  # the exact search over all of alice's items
    assert asyncio.run(recall()) == small and len(small) == 3 and "Felix" not in str(small)


def test_a_fact_stated_again_within_the_hour_writes_nothing(tmp_path, encoder, monkeypatch):  # noqa: F811
    from memory import long_term

    mem = LongTermMemory(open_collections(tmp_path / "memory"), encoder)
    writes = []

    async def go():
        first = await mem.remember("alice", "My cat is called Tom.")
        writer = await mem._writer("memory")
        monkeypatch.setattr(writer, "update", lambda **kw: writes.append(kw) or type(writer).update(writer, **kw))
        again = await mem.remember("alice", "My cat is called Tom.")
        assert again.id == first.id and again.created_at == first.created_at and writes == []
        monkeypatch.setattr(long_term, "REFRESH_S", 0.0)
        later = await mem.remember("alice", "My cat is called Tom.")
        assert later.id == first.id and later.created_at > first.created_at and len(writes) == 1
        return [m.created_at for m in await mem.list("memory", "alice")]

    assert len(asyncio.run(go())) == 1


def test_concurrent_writes_go_out_in_order_as_one_call_per_operation(tmp_path):
    import threading

    calls = []

    class Collection:
        def upsert(self, ids, embeddings, documents, metadatas):
            calls.append(("upsert", ids, documents))

        def update(self, ids, metadatas):
            calls.append(("update", ids, [m["n"] for m in metadatas]))

    writer = store.CollectionWriter(Collection())
    hold = writer._commit._run_lock
    with hold:  # a write is "running": the next callers queue behind it
        threads = [
            threading.Thread(target=writer.upsert, args=(["a"], [[0.0]], ["first a"], [{}])),
            threading.Thread(target=writer.upsert, args=(["b"], [[0.0]], ["b"], [{}])),
            threading.Thread(target=writer.upsert, args=(["a"], [[0.0]], ["second a"], [{}])),
            threading.Thread(target=writer.update, args=(["b"], [{"n": 1}])),
        ]
        for t in threads:
            t.start()
            while len(writer._commit._queue) < threads.index(t) + 1:
                pass
    for t in threads:
        t.join(10)
    # One upsert (the last write of "a" wins, in its first place) and then the update.
    assert calls == [("upsert", ["a", "b"], ["second a", "b"]), ("update", ["b"], [1])]
