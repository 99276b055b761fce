"""Entry point run by the *argilla-server* virtualenv's Python (not the worker's).

It registers a search engine that replaces the three Painless-scripted updates of
argilla-server 2.8 with read-modify-write, then hands the command line to the server's own
CLI (``start``, ``worker``, ``search-engine reindex``, ``database ...``).

Why: the local stack uses osmem-server, an in-memory OpenSearch-compatible engine that does
not run scripts. Without this patch ``POST /api/v1/records/{id}/responses`` — the endpoint
the Argilla UI calls when an annotator submits — fails with HTTP 500.

The engine also maps a response without ``values`` (a discarded response may have none; the
server accepts it) to an index document without answers. argilla-server 2.8 crashes on it
(``'NoneType' object has no attribute 'items'``): every bulk upsert of a batch holding such a
record commits to the database but answers 500 and leaves the search index stale, and
``search-engine reindex`` fails. ``ARGILLA_WORKER_UPSTREAM_RESPONSE_MAPPING=1`` keeps the
upstream mapping (the tests use it to reproduce that failure on a real server).

This file must import nothing from the ``worker`` package: that package is not installed in
the server's virtualenv.
"""

from __future__ import annotations

import os
import sys


def _register_read_modify_write_engine() -> None:
    from argilla_server.search_engine.base import SearchEngine
    from argilla_server.search_engine.commons import es_index_name_for_dataset, es_path_for_question_response
    from argilla_server.search_engine.opensearch import OpenSearchEngine

    class ReadModifyWriteOpenSearchEngine(OpenSearchEngine):
        """OpenSearch engine whose partial updates need no scripting support."""

        async def _rewrite_source(self, index_name: str, record_id: str, edit) -> None:
            document = await self.client.get(index=index_name, id=record_id)
            source = document["_source"]
            edit(source)
            await self.client.index(index=index_name, id=record_id, body=source, refresh=True)

        async def update_record_response(self, response) -> None:
            record = response.record
            es_response = self._map_record_response_to_es(response)

            def edit(source: dict) -> None:
                kept = [r for r in source.get("responses") or [] if str(r.get("id")) != str(response.id)]
                source["responses"] = [*kept, es_response]

            await self._rewrite_source(es_index_name_for_dataset(record.dataset), str(record.id), edit)

        async def delete_record_response(self, response) -> None:
            record = response.record

            def edit(source: dict) -> None:
                responses = source.get("responses") or []
                source["responses"] = [r for r in responses if str(r.get("id")) != str(response.id)]

            await self._rewrite_source(es_index_name_for_dataset(record.dataset), str(record.id), edit)

        async def delete_record_suggestion(self, suggestion) -> None:
            question_name = suggestion.question.name

            def edit(source: dict) -> None:
                (source.get("suggestions") or {}).pop(question_name, None)

            index_name = es_index_name_for_dataset(suggestion.record.dataset)
            await self._rewrite_source(index_name, str(suggestion.record_id), edit)

    if os.environ.get("ARGILLA_WORKER_UPSTREAM_RESPONSE_MAPPING") != "1":
        def map_response(response) -> dict:
            answers = response.values or {}
            return {"id": response.id, "status": response.status, "user_id": response.user_id,
                    **{es_path_for_question_response(question): (value or {}).get("value")
                       for question, value in answers.items()}}

        ReadModifyWriteOpenSearchEngine._map_record_response_to_es = staticmethod(map_response)

    SearchEngine.register(engine_name="opensearch")(ReadModifyWriteOpenSearchEngine)


THEN = "--then"  # separates server commands run one after the other in this one process


def main(argv: list[str]) -> None:
    """Run the server CLI's command ``argv``; ``a b --then c d`` runs ``a b``, then ``c d`` (one interpreter and one
    import of the server for both, ~3 s less per step), stopping with the exit status of the first that fails."""
    _register_read_modify_write_engine()
    from argilla_server.cli.__main__ import app

    *first, last = _commands(argv)
    for command in first:
        status = app(args=command, prog_name="argilla-server", standalone_mode=False)
        if status:  # click answers a command's exit status instead of exiting when not standalone
            sys.exit(status)
    app(args=last, prog_name="argilla-server")


def _commands(argv: list[str]) -> list[list[str]]:
    commands: list[list[str]] = [[]]
    for argument in argv:
        if argument == THEN:
            commands.append([])
        else:
            commands[-1].append(argument)
    return commands


if __name__ == "__main__":
    main(sys.argv[1:])
