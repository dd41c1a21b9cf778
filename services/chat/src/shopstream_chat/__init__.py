"""The chat service: one room per live, opened and closed by the live's events; messages with
slow mode, a versioned banned-word list and mutes; questions and answers; moderation by the
live's hosts and moderators; a resumable Server-Sent-Events feed. ``python -m shopstream_chat``
runs it."""
