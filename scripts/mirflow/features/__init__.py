"""Feature families: pure computations over decoded audio."""
