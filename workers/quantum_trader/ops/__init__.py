"""Operations on a running profile: pause, resume, flatten, positions, trades, risk reset.

:mod:`.core` is pure (plans, rows, the audit record); :mod:`.service` is the async shell
against the profile's Redis that ``qt`` and the REST API (:mod:`.api`) both call.
"""
