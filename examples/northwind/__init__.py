"""The sample company "Northwind Robotics": content and writers for examples/generate.py."""
