import clipdesk

clf = clipdesk.load("demo")                   # offline; clipdesk.load() is ViT-B-32-256 (one download)
results = clf.classify(clipdesk.demo_images()[:3], ["red circle", "blue star", "yellow triangle"])
for r in results:                             # images: a file, a folder, a PIL image, an array, a list
    print(r.path, r.label, f"{r.score:.2f}")  # r.scores: every label; r.error: an unreadable file
print(clf.search("pink star", clipdesk.demo_images(), top_k=1)[0].path)
