"""The operator's view of what an experiment costs (the agent's own cost code is
worker_bootstrap/cost/, whose ``keys`` names the metadata keys used here).

- ``experiment_cost``: the fleet's spend and where it went (`optfleet status`, the demo); the
  observations' part is the server's ``suggestion_server.domain.cost_split``, so the experiment
  page and the CLI show the same figures;
- ``prices``: the operator's price book, cached under the user's cache directory;
- ``demo_cost``: the demo's simulated prices (the pricing emulator) and its closing cost table.
"""
