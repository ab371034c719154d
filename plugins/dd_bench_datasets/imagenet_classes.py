"""Pinned ImageNet-1K (ILSVRC-2012) class lists and the standard subsets dd-bench knows.

Data only: nothing here reads files or the network. Every list was read from the source named
next to it (repository + path, or paper); no entry was typed from memory.

Class order everywhere in dd-bench is the sorted wnid order. ``IMAGENET1K_WNIDS[i]`` is ImageNet
class index ``i`` (the order of ``LOC_synset_mapping.txt`` and of torchvision's ``ImageFolder`` on
``train/``), and a subset's label ``c`` is the ``c``-th wnid of its sorted ``wnids``. Where a
source uses another label order (MTT labels its subsets in list order), that order is kept only
in the subset's ``note``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Subset:
    """A named set of ImageNet-1K classes: ``wnids`` sorted, ``source`` where it is defined."""

    name: str
    wnids: tuple[str, ...]
    source: str
    note: str = ""


# The 1000 ILSVRC-2012 synset ids in sorted order (index i = ImageNet class index i).
# Read from Tencent/ncnn, examples/synset_words.txt (the Caffe ILSVRC-2012 ``synset_words.txt``).
# Checked line for line against tensorflow/models,
# research/slim/datasets/imagenet_lsvrc_2015_synsets.txt (same 1000 ids, same order).
IMAGENET1K_WNIDS: tuple[str, ...] = (
    "n01440764", "n01443537", "n01484850", "n01491361", "n01494475", "n01496331", "n01498041",  # 0
    "n01514668", "n01514859", "n01518878", "n01530575", "n01531178", "n01532829", "n01534433",  # 7
    "n01537544", "n01558993", "n01560419", "n01580077", "n01582220", "n01592084", "n01601694",  # 14
    "n01608432", "n01614925", "n01616318", "n01622779", "n01629819", "n01630670", "n01631663",  # 21
    "n01632458", "n01632777", "n01641577", "n01644373", "n01644900", "n01664065", "n01665541",  # 28
    "n01667114", "n01667778", "n01669191", "n01675722", "n01677366", "n01682714", "n01685808",  # 35
    "n01687978", "n01688243", "n01689811", "n01692333", "n01693334", "n01694178", "n01695060",  # 42
    "n01697457", "n01698640", "n01704323", "n01728572", "n01728920", "n01729322", "n01729977",  # 49
    "n01734418", "n01735189", "n01737021", "n01739381", "n01740131", "n01742172", "n01744401",  # 56
    "n01748264", "n01749939", "n01751748", "n01753488", "n01755581", "n01756291", "n01768244",  # 63
    "n01770081", "n01770393", "n01773157", "n01773549", "n01773797", "n01774384", "n01774750",  # 70
    "n01775062", "n01776313", "n01784675", "n01795545", "n01796340", "n01797886", "n01798484",  # 77
    "n01806143", "n01806567", "n01807496", "n01817953", "n01818515", "n01819313", "n01820546",  # 84
    "n01824575", "n01828970", "n01829413", "n01833805", "n01843065", "n01843383", "n01847000",  # 91
    "n01855032", "n01855672", "n01860187", "n01871265", "n01872401", "n01873310", "n01877812",  # 98
    "n01882714", "n01883070", "n01910747", "n01914609", "n01917289", "n01924916", "n01930112",  # 105
    "n01943899", "n01944390", "n01945685", "n01950731", "n01955084", "n01968897", "n01978287",  # 112
    "n01978455", "n01980166", "n01981276", "n01983481", "n01984695", "n01985128", "n01986214",  # 119
    "n01990800", "n02002556", "n02002724", "n02006656", "n02007558", "n02009229", "n02009912",  # 126
    "n02011460", "n02012849", "n02013706", "n02017213", "n02018207", "n02018795", "n02025239",  # 133
    "n02027492", "n02028035", "n02033041", "n02037110", "n02051845", "n02056570", "n02058221",  # 140
    "n02066245", "n02071294", "n02074367", "n02077923", "n02085620", "n02085782", "n02085936",  # 147
    "n02086079", "n02086240", "n02086646", "n02086910", "n02087046", "n02087394", "n02088094",  # 154
    "n02088238", "n02088364", "n02088466", "n02088632", "n02089078", "n02089867", "n02089973",  # 161
    "n02090379", "n02090622", "n02090721", "n02091032", "n02091134", "n02091244", "n02091467",  # 168
    "n02091635", "n02091831", "n02092002", "n02092339", "n02093256", "n02093428", "n02093647",  # 175
    "n02093754", "n02093859", "n02093991", "n02094114", "n02094258", "n02094433", "n02095314",  # 182
    "n02095570", "n02095889", "n02096051", "n02096177", "n02096294", "n02096437", "n02096585",  # 189
    "n02097047", "n02097130", "n02097209", "n02097298", "n02097474", "n02097658", "n02098105",  # 196
    "n02098286", "n02098413", "n02099267", "n02099429", "n02099601", "n02099712", "n02099849",  # 203
    "n02100236", "n02100583", "n02100735", "n02100877", "n02101006", "n02101388", "n02101556",  # 210
    "n02102040", "n02102177", "n02102318", "n02102480", "n02102973", "n02104029", "n02104365",  # 217
    "n02105056", "n02105162", "n02105251", "n02105412", "n02105505", "n02105641", "n02105855",  # 224
    "n02106030", "n02106166", "n02106382", "n02106550", "n02106662", "n02107142", "n02107312",  # 231
    "n02107574", "n02107683", "n02107908", "n02108000", "n02108089", "n02108422", "n02108551",  # 238
    "n02108915", "n02109047", "n02109525", "n02109961", "n02110063", "n02110185", "n02110341",  # 245
    "n02110627", "n02110806", "n02110958", "n02111129", "n02111277", "n02111500", "n02111889",  # 252
    "n02112018", "n02112137", "n02112350", "n02112706", "n02113023", "n02113186", "n02113624",  # 259
    "n02113712", "n02113799", "n02113978", "n02114367", "n02114548", "n02114712", "n02114855",  # 266
    "n02115641", "n02115913", "n02116738", "n02117135", "n02119022", "n02119789", "n02120079",  # 273
    "n02120505", "n02123045", "n02123159", "n02123394", "n02123597", "n02124075", "n02125311",  # 280
    "n02127052", "n02128385", "n02128757", "n02128925", "n02129165", "n02129604", "n02130308",  # 287
    "n02132136", "n02133161", "n02134084", "n02134418", "n02137549", "n02138441", "n02165105",  # 294
    "n02165456", "n02167151", "n02168699", "n02169497", "n02172182", "n02174001", "n02177972",  # 301
    "n02190166", "n02206856", "n02219486", "n02226429", "n02229544", "n02231487", "n02233338",  # 308
    "n02236044", "n02256656", "n02259212", "n02264363", "n02268443", "n02268853", "n02276258",  # 315
    "n02277742", "n02279972", "n02280649", "n02281406", "n02281787", "n02317335", "n02319095",  # 322
    "n02321529", "n02325366", "n02326432", "n02328150", "n02342885", "n02346627", "n02356798",  # 329
    "n02361337", "n02363005", "n02364673", "n02389026", "n02391049", "n02395406", "n02396427",  # 336
    "n02397096", "n02398521", "n02403003", "n02408429", "n02410509", "n02412080", "n02415577",  # 343
    "n02417914", "n02422106", "n02422699", "n02423022", "n02437312", "n02437616", "n02441942",  # 350
    "n02442845", "n02443114", "n02443484", "n02444819", "n02445715", "n02447366", "n02454379",  # 357
    "n02457408", "n02480495", "n02480855", "n02481823", "n02483362", "n02483708", "n02484975",  # 364
    "n02486261", "n02486410", "n02487347", "n02488291", "n02488702", "n02489166", "n02490219",  # 371
    "n02492035", "n02492660", "n02493509", "n02493793", "n02494079", "n02497673", "n02500267",  # 378
    "n02504013", "n02504458", "n02509815", "n02510455", "n02514041", "n02526121", "n02536864",  # 385
    "n02606052", "n02607072", "n02640242", "n02641379", "n02643566", "n02655020", "n02666196",  # 392
    "n02667093", "n02669723", "n02672831", "n02676566", "n02687172", "n02690373", "n02692877",  # 399
    "n02699494", "n02701002", "n02704792", "n02708093", "n02727426", "n02730930", "n02747177",  # 406
    "n02749479", "n02769748", "n02776631", "n02777292", "n02782093", "n02783161", "n02786058",  # 413
    "n02787622", "n02788148", "n02790996", "n02791124", "n02791270", "n02793495", "n02794156",  # 420
    "n02795169", "n02797295", "n02799071", "n02802426", "n02804414", "n02804610", "n02807133",  # 427
    "n02808304", "n02808440", "n02814533", "n02814860", "n02815834", "n02817516", "n02823428",  # 434
    "n02823750", "n02825657", "n02834397", "n02835271", "n02837789", "n02840245", "n02841315",  # 441
    "n02843684", "n02859443", "n02860847", "n02865351", "n02869837", "n02870880", "n02871525",  # 448
    "n02877765", "n02879718", "n02883205", "n02892201", "n02892767", "n02894605", "n02895154",  # 455
    "n02906734", "n02909870", "n02910353", "n02916936", "n02917067", "n02927161", "n02930766",  # 462
    "n02939185", "n02948072", "n02950826", "n02951358", "n02951585", "n02963159", "n02965783",  # 469
    "n02966193", "n02966687", "n02971356", "n02974003", "n02977058", "n02978881", "n02979186",  # 476
    "n02980441", "n02981792", "n02988304", "n02992211", "n02992529", "n02999410", "n03000134",  # 483
    "n03000247", "n03000684", "n03014705", "n03016953", "n03017168", "n03018349", "n03026506",  # 490
    "n03028079", "n03032252", "n03041632", "n03042490", "n03045698", "n03047690", "n03062245",  # 497
    "n03063599", "n03063689", "n03065424", "n03075370", "n03085013", "n03089624", "n03095699",  # 504
    "n03100240", "n03109150", "n03110669", "n03124043", "n03124170", "n03125729", "n03126707",  # 511
    "n03127747", "n03127925", "n03131574", "n03133878", "n03134739", "n03141823", "n03146219",  # 518
    "n03160309", "n03179701", "n03180011", "n03187595", "n03188531", "n03196217", "n03197337",  # 525
    "n03201208", "n03207743", "n03207941", "n03208938", "n03216828", "n03218198", "n03220513",  # 532
    "n03223299", "n03240683", "n03249569", "n03250847", "n03255030", "n03259280", "n03271574",  # 539
    "n03272010", "n03272562", "n03290653", "n03291819", "n03297495", "n03314780", "n03325584",  # 546
    "n03337140", "n03344393", "n03345487", "n03347037", "n03355925", "n03372029", "n03376595",  # 553
    "n03379051", "n03384352", "n03388043", "n03388183", "n03388549", "n03393912", "n03394916",  # 560
    "n03400231", "n03404251", "n03417042", "n03424325", "n03425413", "n03443371", "n03444034",  # 567
    "n03445777", "n03445924", "n03447447", "n03447721", "n03450230", "n03452741", "n03457902",  # 574
    "n03459775", "n03461385", "n03467068", "n03476684", "n03476991", "n03478589", "n03481172",  # 581
    "n03482405", "n03483316", "n03485407", "n03485794", "n03492542", "n03494278", "n03495258",  # 588
    "n03496892", "n03498962", "n03527444", "n03529860", "n03530642", "n03532672", "n03534580",  # 595
    "n03535780", "n03538406", "n03544143", "n03584254", "n03584829", "n03590841", "n03594734",  # 602
    "n03594945", "n03595614", "n03598930", "n03599486", "n03602883", "n03617480", "n03623198",  # 609
    "n03627232", "n03630383", "n03633091", "n03637318", "n03642806", "n03649909", "n03657121",  # 616
    "n03658185", "n03661043", "n03662601", "n03666591", "n03670208", "n03673027", "n03676483",  # 623
    "n03680355", "n03690938", "n03691459", "n03692522", "n03697007", "n03706229", "n03709823",  # 630
    "n03710193", "n03710637", "n03710721", "n03717622", "n03720891", "n03721384", "n03724870",  # 637
    "n03729826", "n03733131", "n03733281", "n03733805", "n03742115", "n03743016", "n03759954",  # 644
    "n03761084", "n03763968", "n03764736", "n03769881", "n03770439", "n03770679", "n03773504",  # 651
    "n03775071", "n03775546", "n03776460", "n03777568", "n03777754", "n03781244", "n03782006",  # 658
    "n03785016", "n03786901", "n03787032", "n03788195", "n03788365", "n03791053", "n03792782",  # 665
    "n03792972", "n03793489", "n03794056", "n03796401", "n03803284", "n03804744", "n03814639",  # 672
    "n03814906", "n03825788", "n03832673", "n03837869", "n03838899", "n03840681", "n03841143",  # 679
    "n03843555", "n03854065", "n03857828", "n03866082", "n03868242", "n03868863", "n03871628",  # 686
    "n03873416", "n03874293", "n03874599", "n03876231", "n03877472", "n03877845", "n03884397",  # 693
    "n03887697", "n03888257", "n03888605", "n03891251", "n03891332", "n03895866", "n03899768",  # 700
    "n03902125", "n03903868", "n03908618", "n03908714", "n03916031", "n03920288", "n03924679",  # 707
    "n03929660", "n03929855", "n03930313", "n03930630", "n03933933", "n03935335", "n03937543",  # 714
    "n03938244", "n03942813", "n03944341", "n03947888", "n03950228", "n03954731", "n03956157",  # 721
    "n03958227", "n03961711", "n03967562", "n03970156", "n03976467", "n03976657", "n03977966",  # 728
    "n03980874", "n03982430", "n03983396", "n03991062", "n03992509", "n03995372", "n03998194",  # 735
    "n04004767", "n04005630", "n04008634", "n04009552", "n04019541", "n04023962", "n04026417",  # 742
    "n04033901", "n04033995", "n04037443", "n04039381", "n04040759", "n04041544", "n04044716",  # 749
    "n04049303", "n04065272", "n04067472", "n04069434", "n04070727", "n04074963", "n04081281",  # 756
    "n04086273", "n04090263", "n04099969", "n04111531", "n04116512", "n04118538", "n04118776",  # 763
    "n04120489", "n04125021", "n04127249", "n04131690", "n04133789", "n04136333", "n04141076",  # 770
    "n04141327", "n04141975", "n04146614", "n04147183", "n04149813", "n04152593", "n04153751",  # 777
    "n04154565", "n04162706", "n04179913", "n04192698", "n04200800", "n04201297", "n04204238",  # 784
    "n04204347", "n04208210", "n04209133", "n04209239", "n04228054", "n04229816", "n04235860",  # 791
    "n04238763", "n04239074", "n04243546", "n04251144", "n04252077", "n04252225", "n04254120",  # 798
    "n04254680", "n04254777", "n04258138", "n04259630", "n04263257", "n04264628", "n04265275",  # 805
    "n04266014", "n04270147", "n04273569", "n04275548", "n04277352", "n04285008", "n04286575",  # 812
    "n04296562", "n04310018", "n04311004", "n04311174", "n04317175", "n04325704", "n04326547",  # 819
    "n04328186", "n04330267", "n04332243", "n04335435", "n04336792", "n04344873", "n04346328",  # 826
    "n04347754", "n04350905", "n04355338", "n04355933", "n04356056", "n04357314", "n04366367",  # 833
    "n04367480", "n04370456", "n04371430", "n04371774", "n04372370", "n04376876", "n04380533",  # 840
    "n04389033", "n04392985", "n04398044", "n04399382", "n04404412", "n04409515", "n04417672",  # 847
    "n04418357", "n04423845", "n04428191", "n04429376", "n04435653", "n04442312", "n04443257",  # 854
    "n04447861", "n04456115", "n04458633", "n04461696", "n04462240", "n04465501", "n04467665",  # 861
    "n04476259", "n04479046", "n04482393", "n04483307", "n04485082", "n04486054", "n04487081",  # 868
    "n04487394", "n04493381", "n04501370", "n04505470", "n04507155", "n04509417", "n04515003",  # 875
    "n04517823", "n04522168", "n04523525", "n04525038", "n04525305", "n04532106", "n04532670",  # 882
    "n04536866", "n04540053", "n04542943", "n04548280", "n04548362", "n04550184", "n04552348",  # 889
    "n04553703", "n04554684", "n04557648", "n04560804", "n04562935", "n04579145", "n04579432",  # 896
    "n04584207", "n04589890", "n04590129", "n04591157", "n04591713", "n04592741", "n04596742",  # 903
    "n04597913", "n04599235", "n04604644", "n04606251", "n04612504", "n04613696", "n06359193",  # 910
    "n06596364", "n06785654", "n06794110", "n06874185", "n07248320", "n07565083", "n07579787",  # 917
    "n07583066", "n07584110", "n07590611", "n07613480", "n07614500", "n07615774", "n07684084",  # 924
    "n07693725", "n07695742", "n07697313", "n07697537", "n07711569", "n07714571", "n07714990",  # 931
    "n07715103", "n07716358", "n07716906", "n07717410", "n07717556", "n07718472", "n07718747",  # 938
    "n07720875", "n07730033", "n07734744", "n07742313", "n07745940", "n07747607", "n07749582",  # 945
    "n07753113", "n07753275", "n07753592", "n07754684", "n07760859", "n07768694", "n07802026",  # 952
    "n07831146", "n07836838", "n07860988", "n07871810", "n07873807", "n07875152", "n07880968",  # 959
    "n07892512", "n07920052", "n07930864", "n07932039", "n09193705", "n09229709", "n09246464",  # 966
    "n09256479", "n09288635", "n09332890", "n09399592", "n09421951", "n09428293", "n09468604",  # 973
    "n09472597", "n09835506", "n10148035", "n10565667", "n11879895", "n11939491", "n12057211",  # 980
    "n12144580", "n12267677", "n12620546", "n12768682", "n12985857", "n12998815", "n13037406",  # 987
    "n13040303", "n13044778", "n13052670", "n13054560", "n13133613", "n15075141",  # 994
)

# A short human name per class, same order: the first name in the synset's word list in
# Tencent/ncnn, examples/synset_words.txt. Not unique: "crane" (bird n02012849, machine
# n03126707) and "maillot" (n03710637, n03710721) each appear twice; use wnids as keys.
IMAGENET1K_NAMES: tuple[str, ...] = (
    "tench", "goldfish", "great white shark", "tiger shark", "hammerhead", "electric ray",  # 0
    "stingray", "cock", "hen", "ostrich", "brambling", "goldfinch", "house finch", "junco",  # 6
    "indigo bunting", "robin", "bulbul", "jay", "magpie", "chickadee", "water ouzel", "kite",  # 14
    "bald eagle", "vulture", "great grey owl", "European fire salamander", "common newt", "eft",  # 22
    "spotted salamander", "axolotl", "bullfrog", "tree frog", "tailed frog", "loggerhead",  # 28
    "leatherback turtle", "mud turtle", "terrapin", "box turtle", "banded gecko",  # 34
    "common iguana", "American chameleon", "whiptail", "agama", "frilled lizard",  # 39
    "alligator lizard", "Gila monster", "green lizard", "African chameleon", "Komodo dragon",  # 44
    "African crocodile", "American alligator", "triceratops", "thunder snake", "ringneck snake",  # 49
    "hognose snake", "green snake", "king snake", "garter snake", "water snake", "vine snake",  # 54
    "night snake", "boa constrictor", "rock python", "Indian cobra", "green mamba", "sea snake",  # 60
    "horned viper", "diamondback", "sidewinder", "trilobite", "harvestman", "scorpion",  # 66
    "black and gold garden spider", "barn spider", "garden spider", "black widow", "tarantula",  # 72
    "wolf spider", "tick", "centipede", "black grouse", "ptarmigan", "ruffed grouse",  # 77
    "prairie chicken", "peacock", "quail", "partridge", "African grey", "macaw",  # 83
    "sulphur-crested cockatoo", "lorikeet", "coucal", "bee eater", "hornbill", "hummingbird",  # 89
    "jacamar", "toucan", "drake", "red-breasted merganser", "goose", "black swan", "tusker",  # 95
    "echidna", "platypus", "wallaby", "koala", "wombat", "jellyfish", "sea anemone",  # 102
    "brain coral", "flatworm", "nematode", "conch", "snail", "slug", "sea slug", "chiton",  # 109
    "chambered nautilus", "Dungeness crab", "rock crab", "fiddler crab", "king crab",  # 117
    "American lobster", "spiny lobster", "crayfish", "hermit crab", "isopod", "white stork",  # 122
    "black stork", "spoonbill", "flamingo", "little blue heron", "American egret", "bittern",  # 128
    "crane", "limpkin", "European gallinule", "American coot", "bustard", "ruddy turnstone",  # 134
    "red-backed sandpiper", "redshank", "dowitcher", "oystercatcher", "pelican", "king penguin",  # 140
    "albatross", "grey whale", "killer whale", "dugong", "sea lion", "Chihuahua",  # 146
    "Japanese spaniel", "Maltese dog", "Pekinese", "Shih-Tzu", "Blenheim spaniel", "papillon",  # 152
    "toy terrier", "Rhodesian ridgeback", "Afghan hound", "basset", "beagle", "bloodhound",  # 158
    "bluetick", "black-and-tan coonhound", "Walker hound", "English foxhound", "redbone",  # 164
    "borzoi", "Irish wolfhound", "Italian greyhound", "whippet", "Ibizan hound",  # 169
    "Norwegian elkhound", "otterhound", "Saluki", "Scottish deerhound", "Weimaraner",  # 174
    "Staffordshire bullterrier", "American Staffordshire terrier", "Bedlington terrier",  # 179
    "Border terrier", "Kerry blue terrier", "Irish terrier", "Norfolk terrier",  # 182
    "Norwich terrier", "Yorkshire terrier", "wire-haired fox terrier", "Lakeland terrier",  # 186
    "Sealyham terrier", "Airedale", "cairn", "Australian terrier", "Dandie Dinmont",  # 190
    "Boston bull", "miniature schnauzer", "giant schnauzer", "standard schnauzer",  # 195
    "Scotch terrier", "Tibetan terrier", "silky terrier", "soft-coated wheaten terrier",  # 199
    "West Highland white terrier", "Lhasa", "flat-coated retriever", "curly-coated retriever",  # 203
    "golden retriever", "Labrador retriever", "Chesapeake Bay retriever",  # 207
    "German short-haired pointer", "vizsla", "English setter", "Irish setter", "Gordon setter",  # 210
    "Brittany spaniel", "clumber", "English springer", "Welsh springer spaniel",  # 215
    "cocker spaniel", "Sussex spaniel", "Irish water spaniel", "kuvasz", "schipperke",  # 219
    "groenendael", "malinois", "briard", "kelpie", "komondor", "Old English sheepdog",  # 224
    "Shetland sheepdog", "collie", "Border collie", "Bouvier des Flandres", "Rottweiler",  # 230
    "German shepherd", "Doberman", "miniature pinscher", "Greater Swiss Mountain dog",  # 235
    "Bernese mountain dog", "Appenzeller", "EntleBucher", "boxer", "bull mastiff",  # 239
    "Tibetan mastiff", "French bulldog", "Great Dane", "Saint Bernard", "Eskimo dog",  # 244
    "malamute", "Siberian husky", "dalmatian", "affenpinscher", "basenji", "pug", "Leonberg",  # 249
    "Newfoundland", "Great Pyrenees", "Samoyed", "Pomeranian", "chow", "keeshond",  # 256
    "Brabancon griffon", "Pembroke", "Cardigan", "toy poodle", "miniature poodle",  # 262
    "standard poodle", "Mexican hairless", "timber wolf", "white wolf", "red wolf", "coyote",  # 267
    "dingo", "dhole", "African hunting dog", "hyena", "red fox", "kit fox", "Arctic fox",  # 273
    "grey fox", "tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat", "cougar",  # 280
    "lynx", "leopard", "snow leopard", "jaguar", "lion", "tiger", "cheetah", "brown bear",  # 287
    "American black bear", "ice bear", "sloth bear", "mongoose", "meerkat", "tiger beetle",  # 295
    "ladybug", "ground beetle", "long-horned beetle", "leaf beetle", "dung beetle",  # 301
    "rhinoceros beetle", "weevil", "fly", "bee", "ant", "grasshopper", "cricket",  # 306
    "walking stick", "cockroach", "mantis", "cicada", "leafhopper", "lacewing", "dragonfly",  # 313
    "damselfly", "admiral", "ringlet", "monarch", "cabbage butterfly", "sulphur butterfly",  # 320
    "lycaenid", "starfish", "sea urchin", "sea cucumber", "wood rabbit", "hare", "Angora",  # 326
    "hamster", "porcupine", "fox squirrel", "marmot", "beaver", "guinea pig", "sorrel", "zebra",  # 333
    "hog", "wild boar", "warthog", "hippopotamus", "ox", "water buffalo", "bison", "ram",  # 341
    "bighorn", "ibex", "hartebeest", "impala", "gazelle", "Arabian camel", "llama", "weasel",  # 349
    "mink", "polecat", "black-footed ferret", "otter", "skunk", "badger", "armadillo",  # 357
    "three-toed sloth", "orangutan", "gorilla", "chimpanzee", "gibbon", "siamang", "guenon",  # 364
    "patas", "baboon", "macaque", "langur", "colobus", "proboscis monkey", "marmoset",  # 371
    "capuchin", "howler monkey", "titi", "spider monkey", "squirrel monkey", "Madagascar cat",  # 378
    "indri", "Indian elephant", "African elephant", "lesser panda", "giant panda", "barracouta",  # 384
    "eel", "coho", "rock beauty", "anemone fish", "sturgeon", "gar", "lionfish", "puffer",  # 390
    "abacus", "abaya", "academic gown", "accordion", "acoustic guitar", "aircraft carrier",  # 398
    "airliner", "airship", "altar", "ambulance", "amphibian", "analog clock", "apiary", "apron",  # 404
    "ashcan", "assault rifle", "backpack", "bakery", "balance beam", "balloon", "ballpoint",  # 412
    "Band Aid", "banjo", "bannister", "barbell", "barber chair", "barbershop", "barn",  # 419
    "barometer", "barrel", "barrow", "baseball", "basketball", "bassinet", "bassoon",  # 426
    "bathing cap", "bath towel", "bathtub", "beach wagon", "beacon", "beaker", "bearskin",  # 433
    "beer bottle", "beer glass", "bell cote", "bib", "bicycle-built-for-two", "bikini",  # 440
    "binder", "binoculars", "birdhouse", "boathouse", "bobsled", "bolo tie", "bonnet",  # 446
    "bookcase", "bookshop", "bottlecap", "bow", "bow tie", "brass", "brassiere", "breakwater",  # 453
    "breastplate", "broom", "bucket", "buckle", "bulletproof vest", "bullet train",  # 461
    "butcher shop", "cab", "caldron", "candle", "cannon", "canoe", "can opener", "cardigan",  # 467
    "car mirror", "carousel", "carpenter's kit", "carton", "car wheel", "cash machine",  # 475
    "cassette", "cassette player", "castle", "catamaran", "CD player", "cello",  # 481
    "cellular telephone", "chain", "chainlink fence", "chain mail", "chain saw", "chest",  # 487
    "chiffonier", "chime", "china cabinet", "Christmas stocking", "church", "cinema", "cleaver",  # 493
    "cliff dwelling", "cloak", "clog", "cocktail shaker", "coffee mug", "coffeepot", "coil",  # 500
    "combination lock", "computer keyboard", "confectionery", "container ship", "convertible",  # 507
    "corkscrew", "cornet", "cowboy boot", "cowboy hat", "cradle", "crane", "crash helmet",  # 512
    "crate", "crib", "Crock Pot", "croquet ball", "crutch", "cuirass", "dam", "desk",  # 519
    "desktop computer", "dial telephone", "diaper", "digital clock", "digital watch",  # 527
    "dining table", "dishrag", "dishwasher", "disk brake", "dock", "dogsled", "dome", "doormat",  # 532
    "drilling platform", "drum", "drumstick", "dumbbell", "Dutch oven", "electric fan",  # 540
    "electric guitar", "electric locomotive", "entertainment center", "envelope",  # 546
    "espresso maker", "face powder", "feather boa", "file", "fireboat", "fire engine",  # 550
    "fire screen", "flagpole", "flute", "folding chair", "football helmet", "forklift",  # 556
    "fountain", "fountain pen", "four-poster", "freight car", "French horn", "frying pan",  # 562
    "fur coat", "garbage truck", "gasmask", "gas pump", "goblet", "go-kart", "golf ball",  # 568
    "golfcart", "gondola", "gong", "gown", "grand piano", "greenhouse", "grille",  # 575
    "grocery store", "guillotine", "hair slide", "hair spray", "half track", "hammer", "hamper",  # 582
    "hand blower", "hand-held computer", "handkerchief", "hard disc", "harmonica", "harp",  # 589
    "harvester", "hatchet", "holster", "home theater", "honeycomb", "hook", "hoopskirt",  # 595
    "horizontal bar", "horse cart", "hourglass", "iPod", "iron", "jack-o'-lantern", "jean",  # 602
    "jeep", "jersey", "jigsaw puzzle", "jinrikisha", "joystick", "kimono", "knee pad", "knot",  # 609
    "lab coat", "ladle", "lampshade", "laptop", "lawn mower", "lens cap", "letter opener",  # 617
    "library", "lifeboat", "lighter", "limousine", "liner", "lipstick", "Loafer", "lotion",  # 624
    "loudspeaker", "loupe", "lumbermill", "magnetic compass", "mailbag", "mailbox", "maillot",  # 632
    "maillot", "manhole cover", "maraca", "marimba", "mask", "matchstick", "maypole", "maze",  # 639
    "measuring cup", "medicine chest", "megalith", "microphone", "microwave",  # 647
    "military uniform", "milk can", "minibus", "miniskirt", "minivan", "missile", "mitten",  # 652
    "mixing bowl", "mobile home", "Model T", "modem", "monastery", "monitor", "moped", "mortar",  # 659
    "mortarboard", "mosque", "mosquito net", "motor scooter", "mountain bike", "mountain tent",  # 667
    "mouse", "mousetrap", "moving van", "muzzle", "nail", "neck brace", "necklace", "nipple",  # 673
    "notebook", "obelisk", "oboe", "ocarina", "odometer", "oil filter", "organ", "oscilloscope",  # 681
    "overskirt", "oxcart", "oxygen mask", "packet", "paddle", "paddlewheel", "padlock",  # 689
    "paintbrush", "pajama", "palace", "panpipe", "paper towel", "parachute", "parallel bars",  # 696
    "park bench", "parking meter", "passenger car", "patio", "pay-phone", "pedestal",  # 703
    "pencil box", "pencil sharpener", "perfume", "Petri dish", "photocopier", "pick",  # 709
    "pickelhaube", "picket fence", "pickup", "pier", "piggy bank", "pill bottle", "pillow",  # 715
    "ping-pong ball", "pinwheel", "pirate", "pitcher", "plane", "planetarium", "plastic bag",  # 722
    "plate rack", "plow", "plunger", "Polaroid camera", "pole", "police van", "poncho",  # 729
    "pool table", "pop bottle", "pot", "potter's wheel", "power drill", "prayer rug", "printer",  # 736
    "prison", "projectile", "projector", "puck", "punching bag", "purse", "quill", "quilt",  # 743
    "racer", "racket", "radiator", "radio", "radio telescope", "rain barrel",  # 751
    "recreational vehicle", "reel", "reflex camera", "refrigerator", "remote control",  # 757
    "restaurant", "revolver", "rifle", "rocking chair", "rotisserie", "rubber eraser",  # 762
    "rugby ball", "rule", "running shoe", "safe", "safety pin", "saltshaker", "sandal",  # 768
    "sarong", "sax", "scabbard", "scale", "school bus", "schooner", "scoreboard", "screen",  # 775
    "screw", "screwdriver", "seat belt", "sewing machine", "shield", "shoe shop", "shoji",  # 783
    "shopping basket", "shopping cart", "shovel", "shower cap", "shower curtain", "ski",  # 790
    "ski mask", "sleeping bag", "slide rule", "sliding door", "slot", "snorkel", "snowmobile",  # 796
    "snowplow", "soap dispenser", "soccer ball", "sock", "solar dish", "sombrero", "soup bowl",  # 803
    "space bar", "space heater", "space shuttle", "spatula", "speedboat", "spider web",  # 810
    "spindle", "sports car", "spotlight", "stage", "steam locomotive", "steel arch bridge",  # 816
    "steel drum", "stethoscope", "stole", "stone wall", "stopwatch", "stove", "strainer",  # 822
    "streetcar", "stretcher", "studio couch", "stupa", "submarine", "suit", "sundial",  # 829
    "sunglass", "sunglasses", "sunscreen", "suspension bridge", "swab", "sweatshirt",  # 836
    "swimming trunks", "swing", "switch", "syringe", "table lamp", "tank", "tape player",  # 842
    "teapot", "teddy", "television", "tennis ball", "thatch", "theater curtain", "thimble",  # 849
    "thresher", "throne", "tile roof", "toaster", "tobacco shop", "toilet seat", "torch",  # 856
    "totem pole", "tow truck", "toyshop", "tractor", "trailer truck", "tray", "trench coat",  # 863
    "tricycle", "trimaran", "tripod", "triumphal arch", "trolleybus", "trombone", "tub",  # 870
    "turnstile", "typewriter keyboard", "umbrella", "unicycle", "upright", "vacuum", "vase",  # 877
    "vault", "velvet", "vending machine", "vestment", "viaduct", "violin", "volleyball",  # 884
    "waffle iron", "wall clock", "wallet", "wardrobe", "warplane", "washbasin", "washer",  # 891
    "water bottle", "water jug", "water tower", "whiskey jug", "whistle", "wig",  # 898
    "window screen", "window shade", "Windsor tie", "wine bottle", "wing", "wok",  # 904
    "wooden spoon", "wool", "worm fence", "wreck", "yawl", "yurt", "web site", "comic book",  # 910
    "crossword puzzle", "street sign", "traffic light", "book jacket", "menu", "plate",  # 918
    "guacamole", "consomme", "hot pot", "trifle", "ice cream", "ice lolly", "French loaf",  # 924
    "bagel", "pretzel", "cheeseburger", "hotdog", "mashed potato", "head cabbage", "broccoli",  # 931
    "cauliflower", "zucchini", "spaghetti squash", "acorn squash", "butternut squash",  # 938
    "cucumber", "artichoke", "bell pepper", "cardoon", "mushroom", "Granny Smith", "strawberry",  # 943
    "orange", "lemon", "fig", "pineapple", "banana", "jackfruit", "custard apple",  # 950
    "pomegranate", "hay", "carbonara", "chocolate sauce", "dough", "meat loaf", "pizza",  # 957
    "potpie", "burrito", "red wine", "espresso", "cup", "eggnog", "alp", "bubble", "cliff",  # 964
    "coral reef", "geyser", "lakeside", "promontory", "sandbar", "seashore", "valley",  # 973
    "volcano", "ballplayer", "groom", "scuba diver", "rapeseed", "daisy",  # 980
    "yellow lady's slipper", "corn", "acorn", "hip", "buckeye", "coral fungus", "agaric",  # 986
    "gyromitra", "stinkhorn", "earthstar", "hen-of-the-woods", "bolete", "ear", "toilet tissue",  # 993
)

SUBSETS: dict[str, Subset] = {
    "imagenette": Subset(
        name="imagenette",
        wnids=(
            "n01440764", "n02102040", "n02979186", "n03000684", "n03028079", "n03394916",
            "n03417042", "n03425413", "n03445777", "n03888257",
        ),
        source=(
            "fastai/imagenette, README.md (the 10 class names); wnids from tensorflow/datasets, "
            "tensorflow_datasets/image_classification/imagenette_labels.txt (the folder names of "
            "fastai's imagenette2 archives)"
        ),
        note=(
            "tench, English springer, cassette player, chain saw, church, French horn, garbage "
            "truck, gas pump, golf ball, parachute. The README's names match these wnids' synset "
            "words."
        ),
    ),
    "imagewoof": Subset(
        name="imagewoof",
        wnids=(
            "n02086240", "n02087394", "n02088364", "n02089973", "n02093754", "n02096294",
            "n02099601", "n02105641", "n02111889", "n02115641",
        ),
        source=(
            "fastai/imagenette, README.md (the 10 breed names); wnids as they appear in "
            "fastai/imagenette, noisy_imagewoof.csv (paths and labels of fastai's imagewoof2 "
            "archive)"
        ),
        note=(
            "Australian terrier, Border terrier, Samoyed, Beagle, Shih-Tzu, English foxhound, "
            "Rhodesian ridgeback, Dingo, Golden retriever, Old English sheepdog. The README's "
            "names match these wnids' synset words."
        ),
    ),
    "imagenette_mtt": Subset(
        name="imagenette_mtt",
        wnids=(
            "n01440764", "n02102040", "n02979186", "n03000684", "n03028079", "n03394916",
            "n03417042", "n03425413", "n03445777", "n03888257",
        ),
        source=(
            "GeorgeCazenavette/mtt-distillation, utils.py (class Config); indices mapped through "
            "IMAGENET1K_WNIDS"
        ),
        note=(
            "MTT's Config.imagenette as ImageNet class indices, in MTT's order (MTT's label c is "
            "list entry c; dd-bench re-labels by sorted wnid): [0, 217, 482, 491, 497, 566, 569, "
            "571, 574, 701]. In MTT's order these are n01440764 (tench), n02102040 (English "
            "springer), n02979186 (cassette player), n03000684 (chain saw), n03028079 (church), "
            "n03394916 (French horn), n03417042 (garbage truck), n03425413 (gas pump), n03445777 "
            "(golf ball), n03888257 (parachute). Same 10 wnids as fastai's imagenette "
            "(SUBSETS['imagenette']); only the label order can differ (MTT's list is already in "
            "sorted order here)."
        ),
    ),
    "imagewoof_mtt": Subset(
        name="imagewoof_mtt",
        wnids=(
            "n02086240", "n02087394", "n02088364", "n02089973", "n02093754", "n02096294",
            "n02099601", "n02105641", "n02111889", "n02115641",
        ),
        source=(
            "GeorgeCazenavette/mtt-distillation, utils.py (class Config); indices mapped through "
            "IMAGENET1K_WNIDS"
        ),
        note=(
            "MTT's Config.imagewoof as ImageNet class indices, in MTT's order (MTT's label c is "
            "list entry c; dd-bench re-labels by sorted wnid): [193, 182, 258, 162, 155, 167, 159, "
            "273, 207, 229]. In MTT's order these are n02096294 (Australian terrier), n02093754 "
            "(Border terrier), n02111889 (Samoyed), n02088364 (beagle), n02086240 (Shih-Tzu), "
            "n02089973 (English foxhound), n02087394 (Rhodesian ridgeback), n02115641 (dingo), "
            "n02099601 (golden retriever), n02105641 (Old English sheepdog). Same 10 wnids as "
            "fastai's imagewoof (SUBSETS['imagewoof']); only the label order can differ (MTT's "
            "list is not in sorted order)."
        ),
    ),
    "imagefruit": Subset(
        name="imagefruit",
        wnids=(
            "n07718472", "n07720875", "n07742313", "n07745940", "n07747607", "n07749582",
            "n07753113", "n07753275", "n07753592", "n07768694",
        ),
        source=(
            "GeorgeCazenavette/mtt-distillation, utils.py (class Config); indices mapped through "
            "IMAGENET1K_WNIDS"
        ),
        note=(
            "MTT's Config.imagefruit as ImageNet class indices, in MTT's order (MTT's label c is "
            "list entry c; dd-bench re-labels by sorted wnid): [953, 954, 949, 950, 951, 957, 952, "
            "945, 943, 948]. In MTT's order these are n07753275 (pineapple), n07753592 (banana), "
            "n07745940 (strawberry), n07747607 (orange), n07749582 (lemon), n07768694 "
            "(pomegranate), n07753113 (fig), n07720875 (bell pepper), n07718472 (cucumber), "
            "n07742313 (Granny Smith)."
        ),
    ),
    "imageyellow": Subset(
        name="imageyellow",
        wnids=(
            "n01531178", "n01773157", "n02129165", "n02206856", "n03530642", "n04146614",
            "n07749582", "n07753592", "n12057211", "n12144580",
        ),
        source=(
            "GeorgeCazenavette/mtt-distillation, utils.py (class Config); indices mapped through "
            "IMAGENET1K_WNIDS"
        ),
        note=(
            "MTT's Config.imageyellow as ImageNet class indices, in MTT's order (MTT's label c is "
            "list entry c; dd-bench re-labels by sorted wnid): [309, 986, 954, 951, 987, 779, 599, "
            "291, 72, 11]. In MTT's order these are n02206856 (bee), n12057211 (yellow lady's "
            "slipper), n07753592 (banana), n07749582 (lemon), n12144580 (corn), n04146614 (school "
            "bus), n03530642 (honeycomb), n02129165 (lion), n01773157 (black and gold garden "
            "spider), n01531178 (goldfinch)."
        ),
    ),
    "imagemeow": Subset(
        name="imagemeow",
        wnids=(
            "n02123045", "n02123159", "n02123394", "n02123597", "n02124075", "n02127052",
            "n02128757", "n02128925", "n02129165", "n02129604",
        ),
        source=(
            "GeorgeCazenavette/mtt-distillation, utils.py (class Config); indices mapped through "
            "IMAGENET1K_WNIDS"
        ),
        note=(
            "MTT's Config.imagemeow as ImageNet class indices, in MTT's order (MTT's label c is "
            "list entry c; dd-bench re-labels by sorted wnid): [281, 282, 283, 284, 285, 291, 292, "
            "290, 289, 287]. In MTT's order these are n02123045 (tabby), n02123159 (tiger cat), "
            "n02123394 (Persian cat), n02123597 (Siamese cat), n02124075 (Egyptian cat), n02129165 "
            "(lion), n02129604 (tiger), n02128925 (jaguar), n02128757 (snow leopard), n02127052 "
            "(lynx)."
        ),
    ),
    "imagesquawk": Subset(
        name="imagesquawk",
        wnids=(
            "n01518878", "n01614925", "n01806143", "n01818515", "n01819313", "n01843383",
            "n01860187", "n02007558", "n02051845", "n02056570",
        ),
        source=(
            "GeorgeCazenavette/mtt-distillation, utils.py (class Config); indices mapped through "
            "IMAGENET1K_WNIDS"
        ),
        note=(
            "MTT's Config.imagesquawk as ImageNet class indices, in MTT's order (MTT's label c is "
            "list entry c; dd-bench re-labels by sorted wnid): [84, 130, 88, 144, 145, 22, 96, 9, "
            "100, 89]. In MTT's order these are n01806143 (peacock), n02007558 (flamingo), "
            "n01818515 (macaw), n02051845 (pelican), n02056570 (king penguin), n01614925 (bald "
            "eagle), n01843383 (toucan), n01518878 (ostrich), n01860187 (black swan), n01819313 "
            "(sulphur-crested cockatoo)."
        ),
    ),
    "imagenet100": Subset(
        name="imagenet100",
        wnids=(
            "n01558993", "n01692333", "n01729322", "n01735189", "n01749939", "n01773797",
            "n01820546", "n01855672", "n01978455", "n01980166", "n01983481", "n02009229",
            "n02018207", "n02085620", "n02086240", "n02086910", "n02087046", "n02089867",
            "n02089973", "n02090622", "n02091831", "n02093428", "n02099849", "n02100583",
            "n02104029", "n02105505", "n02106550", "n02107142", "n02108089", "n02109047",
            "n02113799", "n02113978", "n02114855", "n02116738", "n02119022", "n02123045",
            "n02138441", "n02172182", "n02231487", "n02259212", "n02326432", "n02396427",
            "n02483362", "n02488291", "n02701002", "n02788148", "n02804414", "n02859443",
            "n02869837", "n02877765", "n02974003", "n03017168", "n03032252", "n03062245",
            "n03085013", "n03259280", "n03379051", "n03424325", "n03492542", "n03494278",
            "n03530642", "n03584829", "n03594734", "n03637318", "n03642806", "n03764736",
            "n03775546", "n03777754", "n03785016", "n03787032", "n03794056", "n03837869",
            "n03891251", "n03903868", "n03930630", "n03947888", "n04026417", "n04067472",
            "n04099969", "n04111531", "n04127249", "n04136333", "n04229816", "n04238763",
            "n04336792", "n04418357", "n04429376", "n04435653", "n04485082", "n04493381",
            "n04517823", "n04589890", "n04592741", "n07714571", "n07715103", "n07753275",
            "n07831146", "n07836838", "n13037406", "n13040303",
        ),
        source=(
            "HobbitLong/CMC, imagenet100.txt (Tian, Krishnan & Isola, Contrastive Multiview "
            "Coding, ECCV 2020)"
        ),
        note=(
            "The ImageNet-100 class list of CMC, commonly reused by later work; CMC's file lists "
            "the wnids unsorted, stored here sorted. A different 'ImageNet-100' is also common: "
            "the Kaggle ambityga/imagenet100 archive, whose class list (as recorded in "
            "BenediktAlkin/ImageNetSubsetGenerator, "
            "imagenet_subset_generator/versions/in100_kaggle.py) is 100 classes among ImageNet "
            "indices 0-150 (all animals) and shares only 8 wnids with CMC's, though some code "
            "presents it as CMC's. IDC (snu-mllab/Efficient-Dataset-Condensation, data.py) reads "
            "its own ./class100.txt (not part of that repository) or takes a seeded random "
            "permutation of the 1000 classes, so its ImageNet-100 could not be compared. Check "
            "which list a paper used before comparing numbers."
        ),
    ),
}
