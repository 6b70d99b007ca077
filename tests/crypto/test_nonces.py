"""Nonce blocks: never a repeat, across threads and across fork."""

from __future__ import annotations

import os
import threading

import pytest

from securecustomer import Context
from securecustomer.crypto import _nonces
from securecustomer.testing import memory_keyring

CTX = Context("customers", "email")


class TestNonces:
    """Nonces are 12 random bytes, unique in a process, its threads and its children."""

    def test_unique_across_blocks(self) -> None:
        drawn = [_nonces.nonce() for _ in range(_nonces.BLOCK * 5 + 3)]
        assert {12} == {len(n) for n in drawn}
        assert len(drawn) == len(set(drawn))

    def test_unique_across_threads(self) -> None:
        results: list[list[bytes]] = []
        barrier = threading.Barrier(4)

        def work() -> None:
            barrier.wait()
            results.append([_nonces.nonce() for _ in range(1000)])

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        every = [n for batch in results for n in batch]
        assert 4000 == len(every) == len(set(every))

    def test_cipher_tokens_use_distinct_nonces(self) -> None:
        cipher = memory_keyring().cipher("s")
        tokens = [cipher.encrypt("same", context=CTX) for _ in range(2000)]
        assert 2000 == len({t[6:18] for t in tokens})

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
    @pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
    def test_fork_child_never_reuses_parent_nonces(self) -> None:
        _nonces.nonce()  # the parent now holds a partly used block
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: report the next nonces it would use, then leave at once
            try:
                os.close(read)
                os.write(write, b"".join(_nonces.nonce() for _ in range(100)))
            finally:
                os._exit(0)
        os.close(write)
        data = b""
        while chunk := os.read(read, 4096):
            data += chunk
        os.close(read)
        os.waitpid(pid, 0)
        child = {data[i : i + 12] for i in range(0, len(data), 12)}
        parent = {_nonces.nonce() for _ in range(100)}
        assert 100 == len(child)
        assert set() == child & parent
