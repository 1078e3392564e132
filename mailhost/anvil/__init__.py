"""anvil(8): client connection counts and event rates, shared by every
worker process of one ``mailhost serve`` (see docs/concurrency.md).

:mod:`.table` holds the counts (pure), :mod:`.wire` is the format between a
worker and the anvil process, :mod:`.service` is that process and
:mod:`.client` how smtpd reaches it (or a table of its own when alone).
"""
