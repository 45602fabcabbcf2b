"""The content of a media message a person sent (a photo of documents), from LINE's data
API with the SDK's `AsyncMessagingApiBlob.get_message_content`.

Called from the journaled handling path (bot.inbox) through `Media.fetch`: a network error,
a 5xx or a 429 raises as it is, so the journal tries the entry again; what LINE will never
give (404: gone or never there, 410, other 4xx: refused) is `MediaGone`, and the volunteer
is told. Its size and type are checked by the caller (bot.case_photos), from the bytes.
"""

from __future__ import annotations

from linebot.v3.messaging import ApiException, AsyncApiClient, AsyncMessagingApiBlob, Configuration

from bot.types import MediaContent, MediaGone
from channels.line.richmenu import DEFAULT_DATA_API_URL


class LineContent:
    """Message content from the data API; one client, opened and closed with the channel."""

    def __init__(self, access_token: str, data_api_url: str = DEFAULT_DATA_API_URL) -> None:
        self._config = Configuration(host=data_api_url.rstrip("/"), access_token=access_token)
        self._client: AsyncApiClient | None = None

    async def open(self) -> None:
        self._client = AsyncApiClient(self._config)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def fetch(self, message_id: str) -> MediaContent:
        if self._client is None:
            await self.open()
        assert self._client is not None
        try:
            data = await AsyncMessagingApiBlob(self._client).get_message_content(message_id)
        except ApiException as exc:
            status = int(exc.status or 0)
            if status == 429 or status >= 500:
                raise  # a blip: the journal tries again
            raise MediaGone(f"line {status}") from None
        return MediaContent(bytes(data))
