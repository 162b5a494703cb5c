"""The usage domain, pure (no storage, no clock): daily rollups of usage records
(``rollups``, ``sketches``, ``repeats``, their ids in ``layout``), the data agent's measures
(``report``, ``anomalies``) and the optimization agent's priced savings (``savings``,
``recommend``)."""
