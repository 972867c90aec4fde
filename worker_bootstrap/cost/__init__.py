"""What instances cost: prices, the fleet's spend, each suggestion's spend, and the dollar cap.

- ``pricing``: USD per instance-hour from AWS (Price List API, spot price history), cached on disk;
- ``fleet_spend``: an experiment's spend over its tagged EC2 instances (``optfleet status``, cap);
- ``shared_spend``: that spend as one figure per experiment, measured by one agent at a time;
- ``attempt_spend``: instance-seconds and dollars of one suggestion over every attempt;
- ``cap``: the dollar cap checked before each new suggestion;
- ``keys``: the metadata key names all of the above read and write.
"""
