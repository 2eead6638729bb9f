"""Style transfer: feature networks, losses, and the three methods (Gatys optimisation, fast, AdaIN)."""
