"""Small published test problems in the mpi-sppy ``scenario_creator`` protocol."""
