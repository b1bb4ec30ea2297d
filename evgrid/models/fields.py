"""Field types shared by the message models: the validation rules in one place."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, PlainSerializer

from evgrid.timeutil import iso, parse_ts

ConnectorType = Literal["CCS", "CHAdeMO", "Type2"]
SignalType = Literal["CURTAIL", "SHED", "RESTORE"]
Priority = Literal[1, 2, 3]

#: ISO-8601 with offset or epoch ms in; aware UTC datetime inside; ISO-8601 "Z" out.
Timestamp = Annotated[
    datetime,
    BeforeValidator(parse_ts),
    PlainSerializer(iso, return_type=str, when_used="json"),
]
Identifier = Annotated[str, Field(min_length=1, max_length=256)]
NonNegativeKw = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
