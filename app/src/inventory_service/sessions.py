"""Server-side sessions in Redis, encrypted with a key derived from APP_KEY.

The cookie holds only a random session id. Redis holds, under a hash of that id, the session data
encrypted with AES-256-GCM (the Redis key is the associated data, so a value cannot be moved to
another key). Any instance with the same APP_KEY and Redis reads any session: no stickiness.
The lifetime is sliding: each use renews it (SESSION_LIFETIME minutes).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass
from typing import cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.asyncio import Redis

from .security import derive_key

COOKIE_NAME = "rollgate_session"
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")
_NONCE_BYTES = 12


@dataclass(frozen=True)
class Session:
    id: str
    user_id: int
    username: str
    csrf_token: str
    created_at: float


class SessionStore:
    def __init__(self, redis: Redis, app_key: bytes, lifetime_seconds: int) -> None:
        self._redis = redis
        self._aead = AESGCM(derive_key(app_key, b"session"))
        self.lifetime_seconds = lifetime_seconds

    @staticmethod
    def _redis_key(session_id: str) -> str:
        # The id itself never reaches Redis: reading the session DB does not yield usable cookies.
        return "session:" + hashlib.sha256(session_id.encode()).hexdigest()

    def _seal(self, redis_key: str, session: Session) -> bytes:
        payload = {k: v for k, v in asdict(session).items() if k != "id"}
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, json.dumps(payload).encode(), redis_key.encode())

    def _open(self, redis_key: str, session_id: str, sealed: bytes) -> Session | None:
        try:
            plain = self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], redis_key.encode())
        except (InvalidTag, ValueError):
            # Written with another APP_KEY (a key rotation) or tampered with: treat as no session.
            return None
        return Session(id=session_id, **json.loads(plain))

    async def create(self, user_id: int, username: str) -> Session:
        session = Session(id=secrets.token_urlsafe(32), user_id=user_id, username=username,
                          csrf_token=secrets.token_urlsafe(32), created_at=time.time())
        key = self._redis_key(session.id)
        await self._redis.set(key, self._seal(key, session), ex=self.lifetime_seconds)
        return session

    async def load(self, session_id: str | None) -> Session | None:
        if not session_id or not _SESSION_ID.match(session_id):
            return None
        key = self._redis_key(session_id)
        # The client does not decode responses: values are bytes.
        sealed = cast(bytes | None, await self._redis.getex(key, ex=self.lifetime_seconds))
        if sealed is None:
            return None
        return self._open(key, session_id, sealed)

    async def destroy(self, session_id: str) -> None:
        await self._redis.delete(self._redis_key(session_id))
