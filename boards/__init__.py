"""FPGA board tops and builds."""
