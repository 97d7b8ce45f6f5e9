"""A reader/writer semaphore on Trio, as Linux's rw_semaphore behaves for the LFA driver:
many readers or one writer, and a waiting writer holds back new readers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio


class RwSem:
    def __init__(self) -> None:
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._lot = trio.lowlevel.ParkingLot()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[None]:
        while self._writer or self._writers_waiting:
            await self._lot.park()
        self._readers += 1
        try:
            yield
        finally:
            self._readers -= 1
            self._lot.unpark_all()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[None]:
        self._writers_waiting += 1
        try:
            while self._writer or self._readers:
                await self._lot.park()
        finally:
            self._writers_waiting -= 1
            self._lot.unpark_all()  # readers held back by this writer may go if it gave up
        self._writer = True
        try:
            yield
        finally:
            self._writer = False
            self._lot.unpark_all()
