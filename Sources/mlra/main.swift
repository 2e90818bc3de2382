import MLRACore
print("stub")
