"""The emulated Arm platform (layer 2): DRAM, CPUs, the EL3 LFA agent, components and the RMM."""
