"""Board top levels (amaranth-boards) and the host link."""
