from mmpretrain.cli import main

main()
