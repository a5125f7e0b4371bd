"""A client for ComfyUI's HTTP API: the standard library, and ``websocket-client`` for ``/ws`` (requirements-batch.txt;
without it, progress is learnt by polling ``/history``). Library code returns values, raises, and tells what it does
through a ``notify`` callback; only the command lines print.

The pack's tooling talks to ComfyUI through it: the batch CLI (``scripts/animdiff_batch.py``), the main
job and the tests' server helper (``scripts/comfy_server.py``). ComfyUI never imports it (the pack's
``__init__`` loads only ``nodes/``); scripts load it with ``pack_import.import_client()``.

- ``api``: one server's HTTP API (``/prompt``, ``/queue``, ``/history``, ``/view``, ``/interrupt``,
  ``/object_info``), its ``/ws`` events, and the server's errors worded as people read them.
- ``workflow``: API-format workflows, overrides and sweeps, and what a prompt needs from a server.
- ``report``: the batch's JSON-lines report and the prompts it has queued (resume).
- ``scheduler``: one batch on one server (``--server``), with its transient-error retries and resume.
- ``cluster``: one batch on a Ray cluster (``--ray``): one actor per worker owns a ComfyUI on its node; Ray places,
  restarts and detects failures. The only module that imports Ray (requirements-cluster.txt), imported only with ``--ray``.
"""
