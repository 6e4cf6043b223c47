"""Hardware checks: simulate exported artifacts against golden vectors, synthesise with Yosys."""
