"""cocotb verification of the generated Verilog against the golden model."""
