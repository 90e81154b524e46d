"""Loading: files and request bodies, through a loader, into the graph as one batch each."""
