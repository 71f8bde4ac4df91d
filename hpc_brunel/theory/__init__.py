"""The theory layer: Brunel's (2000) mean field (Siegert stationary rates) and
its linear stability (the characteristic equation's eigenvalues, phase
boundaries, theory labels). Pure numerics on the configuration."""
