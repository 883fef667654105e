"""The work of one actor: the windows of its service points, as an ordinary class."""
