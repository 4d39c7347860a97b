from placelink.cli import run

run()
