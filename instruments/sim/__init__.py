"""A simulated lab that behaves like a real one: physically grounded, noisy, fallible, and with known truth.

``SimFurnace`` makes samples of a material system (``systems/``), ``SimSEM`` images them, ``SimTester``
measures their properties. Everything is deterministic given the campaign seed and the request key, and
durations pass on the event loop's clock (virtual time under matloop's simulated-lab loop).
"""
