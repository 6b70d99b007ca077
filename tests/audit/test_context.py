"""The current actor follows awaits, tasks, to_thread and propagate(); plain threads start empty."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import attrs
import pytest

from securecustomer.audit import Actor, actor, current_actor, propagate


def actor_id() -> str | None:
    who = current_actor()
    return None if who is None else who.id


@attrs.frozen
class Principal:
    """Anything with an ``id``, like securecustomer.policy.Subject."""

    id: str


class TestActor:
    """actor() sets the actor for a block and restores the previous one after it."""

    def test_block(self) -> None:
        assert current_actor() is None
        with actor("user-7", request_id="req-1", ip="10.0.0.1") as who:
            assert who is current_actor()
            assert Actor("user-7", {"ip": "10.0.0.1"}, "req-1") == who
        assert current_actor() is None

    def test_nested_restore(self) -> None:
        with actor("outer"):
            with actor("inner"):
                assert "inner" == actor_id()
            assert "outer" == actor_id()
        assert actor_id() is None

    def test_restored_after_exception(self) -> None:
        with actor("outer"):
            with pytest.raises(RuntimeError), actor("inner"):
                raise RuntimeError("boom")
            assert "outer" == actor_id()

    def test_subject_object_and_numeric_ids(self) -> None:
        with actor(Principal("user-9")):
            assert "user-9" == actor_id()
        with actor(42):
            assert "42" == actor_id()

    @pytest.mark.parametrize("bad", [None, "", Principal("")])
    def test_needs_an_id(self, bad: object) -> None:
        with pytest.raises(ValueError, match="needs an id"), actor(bad):
            pass

    def test_attributes_are_read_only(self) -> None:
        attributes = {"ip": "10.0.0.1"}
        with actor("user-7", **attributes) as who:
            attributes["ip"] = "changed"
            assert "10.0.0.1" == who.attributes["ip"]
            with pytest.raises(TypeError):
                who.attributes["ip"] = "x"  # type: ignore[index]


class TestAsync:
    """The actor crosses await, tasks started inside the block, and asyncio.to_thread."""

    def test_await_tasks_and_to_thread(self) -> None:
        async def child(delay: float) -> str | None:
            await asyncio.sleep(delay)
            return actor_id()

        async def main() -> list[str | None]:
            with actor("user-1"):
                direct = await child(0)
                tasks = [asyncio.create_task(child(0.01)) for _ in range(3)]
                in_thread = await asyncio.to_thread(actor_id)
            # tasks created inside the block keep the actor after it ended
            gathered = await asyncio.gather(*tasks)
            return [direct, *gathered, in_thread, actor_id()]

        assert ["user-1"] * 5 + [None] == asyncio.run(main())

    def test_concurrent_tasks_do_not_see_each_other(self) -> None:
        async def worker(name: str) -> list[str | None]:
            seen = []
            with actor(name):
                for _ in range(5):
                    await asyncio.sleep(0)
                    seen.append(actor_id())
            return seen

        async def main() -> list[list[str | None]]:
            return await asyncio.gather(*(worker(f"user-{n}") for n in range(4)))

        assert [[f"user-{n}"] * 5 for n in range(4)] == asyncio.run(main())


class TestThreads:
    """A new thread starts with an empty context unless its target is propagate()d."""

    def run_thread(self, target: object) -> list[str | None]:
        seen: list[str | None] = []

        def work() -> None:
            seen.append(actor_id())

        wrapped = target(work) if callable(target) else work
        thread = threading.Thread(target=wrapped)
        thread.start()
        thread.join()
        return seen

    def test_plain_thread_sees_no_actor(self) -> None:
        with actor("user-1"):
            assert [None] == self.run_thread(None)

    def test_propagate_with_thread(self) -> None:
        with actor("user-1"):
            assert ["user-1"] == self.run_thread(propagate)

    def test_propagate_with_executor(self) -> None:
        with actor("user-1"):
            task = propagate(actor_id)
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = [pool.submit(task) for _ in range(4)]
            plain = pool.submit(actor_id)
            assert ["user-1"] * 4 == [future.result() for future in results]
            assert plain.result() is None

    def test_propagate_passes_arguments_and_outlives_the_block(self) -> None:
        def report(a: int, *, b: int = 0) -> tuple[str | None, int, int]:
            return actor_id(), a, b

        with actor("user-1"):
            task = propagate(report)
        assert ("user-1", 1, 2) == task(1, b=2)
        assert actor_id() is None


class TestPropagateToThreads:
    """propagate_to_threads() (opt-in, process-wide): plain threads and thread pools see
    the actor that started them. Run in a subprocess: it changes the whole process."""

    def test_plain_threads_and_pools(self) -> None:
        import subprocess
        import sys
        import textwrap

        code = textwrap.dedent(
            """
            import threading
            from concurrent.futures import ThreadPoolExecutor
            from securecustomer.audit import actor, current_actor, propagate_to_threads

            def who():
                found = current_actor()
                return None if found is None else found.id

            seen = []
            with actor("before"):
                t = threading.Thread(target=lambda: seen.append(who())); t.start(); t.join()
            propagate_to_threads()
            propagate_to_threads()  # twice is once
            with actor("user-7"):
                t = threading.Thread(target=lambda: seen.append(who())); t.start(); t.join()
                with ThreadPoolExecutor(2) as pool:
                    seen.append(pool.submit(who).result())
            t = threading.Thread(target=lambda: seen.append(who())); t.start(); t.join()
            print(seen)
            """
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert "[None, 'user-7', 'user-7', None]" == result.stdout.strip()
