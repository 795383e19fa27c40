"""sidkit: learn, evaluate, ship and monitor semantic IDs (SIDs) for recommendation.

The library is plain Python + torch; it never imports ZenML. The ZenML steps in
``steps/`` are thin wrappers around the functions here.
"""

__version__ = "0.1.0"
