from __future__ import annotations

import pytest

from tests.party.helpers import Member


@pytest.fixture
async def members():
    made: list[Member] = []

    def make(user) -> Member:
        made.append(Member(user))
        return made[-1]

    yield make
    for member in made:
        await member.close()
