"""The workers of the platform; each folder is one worker and talks to the others only by subjects."""
